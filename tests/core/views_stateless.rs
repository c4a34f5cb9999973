//! JSON views of form data (`form_json`, SPEC §3) and stateless data (SPEC §5).

use crate::support::*;
use altinnfs::emulator::inprocess::InProcessClient;

async fn with_views() -> Core {
    Core::with(InProcessClient::sample(), |cfg| cfg.form_json = true).await
}

#[tokio::test]
async fn writing_the_json_view_puts_json_to_the_form_element() {
    let c = with_views().await;
    let m = format!("{}/model", c.instance_dir("50001"));
    c.write_file(&format!("{m}/model.json"), b"{\"a\":1}")
        .await
        .unwrap();
    let up = c.client.uploads();
    let last = up.last().unwrap();
    assert_eq!(
        (last.method, last.content_type.as_str()),
        ("PUT", "application/json")
    );
    assert_eq!(c.client.count(Op::CreateData), 0);
    // Stored as XML, the model reads back with the XML's text for the number.
    assert_eq!(
        c.cat_str(&format!("{m}/model.json")).await.unwrap(),
        "{\"a\":\"1\"}"
    );
}

#[tokio::test]
async fn an_empty_json_view_is_einval_and_leaves_the_form() {
    let c = with_views().await;
    let dir = c.instance_dir("50001");
    let m = format!("{dir}/model");
    let before = c.cat(&format!("{m}/model.xml")).await.unwrap();
    assert_eq!(
        c.truncate(&format!("{m}/model.json"), 0).await.err(),
        Some(libc::EINVAL)
    );
    assert_eq!(c.client.count(Op::ReplaceData), 0);
    assert_eq!(c.cat(&format!("{m}/model.xml")).await.unwrap(), before);
}

#[tokio::test]
async fn an_editor_save_over_the_json_view_is_one_put_as_json() {
    let c = with_views().await;
    let m = format!("{}/model", c.instance_dir("50001"));
    c.write_file(&format!("{m}/.model.json.swp"), b"{\"b\":2}")
        .await
        .unwrap();
    c.rename(&format!("{m}/.model.json.swp"), &format!("{m}/model.json"))
        .await
        .unwrap();
    assert_eq!(c.client.count(Op::ReplaceData), 1);
    assert_eq!(
        c.client.uploads().last().unwrap().content_type,
        "application/json"
    );
    assert_eq!(
        c.cat_str(&format!("{m}/model.json")).await.unwrap(),
        "{\"b\":\"2\"}"
    );
}

#[tokio::test]
async fn an_element_cannot_be_renamed_over_a_json_view() {
    let c = with_views().await;
    let dir = c.instance_dir("50001");
    let m = format!("{dir}/model");
    let before = c.cat(&format!("{m}/model.xml")).await.unwrap();
    assert_eq!(
        c.rename(&format!("{m}/model.xml"), &format!("{m}/model.json"))
            .await,
        Err(libc::EPERM)
    );
    // Refused before any request (plan_rename: JsonViewTarget); the form is untouched.
    assert_eq!(c.client.count(Op::DeleteData), 0);
    assert_eq!(c.client.count(Op::ReplaceData), 0);
    assert_eq!(c.server_names(&dir, "model").len(), 1);
    assert_eq!(c.cat(&format!("{m}/model.xml")).await.unwrap(), before);
}

#[tokio::test]
async fn stateless_new_objects_and_calculations() {
    let c = Core::sample().await;
    assert_eq!(c.ls(".stateless").await.unwrap(), vec!["model"]);
    // A new object is the app's empty model, calculated.
    let fresh = c.cat_str(".stateless/model/new.xml").await.unwrap();
    assert!(fresh.starts_with("<?xml"), "{fresh}");
    assert!(fresh.contains("<sum>0</sum>"), "{fresh}");
    assert!(fresh.contains("<calculated>true</calculated>"), "{fresh}");
    // A written object reads back as the app calculated it.
    c.write_file(
        ".stateless/model/mine.xml",
        b"<model><a>1</a><b>2</b></model>",
    )
    .await
    .unwrap();
    let mine = c.cat_str(".stateless/model/mine.xml").await.unwrap();
    assert!(mine.contains("<a>1</a>"), "{mine}");
    assert!(mine.contains("<sum>3</sum>"), "{mine}");
    assert!(c
        .ls(".stateless/model")
        .await
        .unwrap()
        .contains(&"mine.xml".to_string()));
    assert_eq!(
        c.client.count(Op::CreateData) + c.client.count(Op::ReplaceData),
        0,
        "nothing stored"
    );
    c.unlink(".stateless/model/mine.xml").await.unwrap();
    assert!(!c.exists(".stateless/model/mine.xml").await);
    // Only NAME.xml and NAME.json can be written there.
    assert_eq!(
        c.write_file(".stateless/model/x.txt", b"x").await,
        Err(libc::EINVAL)
    );
}

/// A `find` of `.stateless` (readdir, then a stat of each entry) asks the app nothing:
/// `new.*` is made on read only, and its size is 0 until then. A read makes one, and its
/// size is known for the stat that follows.
#[tokio::test]
async fn a_walk_of_stateless_makes_no_object() {
    let c = Core::sample().await;
    let mut new_files = 0;
    for dir in [".stateless", ".stateless/model"] {
        for (name, attr) in c.readdir(dir).await.unwrap() {
            if name != "." && name != ".." {
                let stat = c.stat(&format!("{dir}/{name}")).await.unwrap();
                if name.starts_with("new.") {
                    assert_eq!((attr.size, stat.size), (0, 0), "{name}: not read yet");
                    new_files += 1;
                }
            }
        }
    }
    assert_eq!(new_files, 2, "the walk saw new.xml and new.json");
    assert_eq!(
        c.client.count(Op::StatelessCreate),
        0,
        "a walk made an object"
    );
    let fresh = c.cat(".stateless/model/new.json").await.unwrap();
    assert_eq!(c.client.count(Op::StatelessCreate), 1);
    let attr = c.stat(".stateless/model/new.json").await.unwrap();
    assert_eq!(attr.size, fresh.len() as u64);
    assert_eq!(
        c.client.count(Op::StatelessCreate),
        1,
        "the stat asked again"
    );
}
