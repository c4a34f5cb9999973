//! Mounting: the seam between the command line and the filesystem.
//!
//! - [`mount_background`]: mount a ready `AltinnFs` at a path, serving from a background
//!   thread; the returned [`MountHandle`] unmounts (after pending uploads) on `unmount()`/drop.
//!   Tests use it with any client (the emulator, or its service in process).
//! - [`run_mount`]: what `altinnfs mount` and `altinnfs demo` do: daemonise (unless
//!   `--foreground`), build the client through a [`Backend`] factory, fetch the app metadata
//!   (failing fast), mount, report readiness to the parent, and unmount cleanly on
//!   SIGINT/SIGTERM or `fusermount3 -u`.

use crate::altinn::client::AltinnClient;
use crate::altinn::retry::{PagePolicy, RetryPolicy, Retrying};
use crate::cli::MountOptions;
use crate::fs::index::IndexConfig;
use crate::fs::{AltinnFs, FsConfig};
use crate::fuse::{start_notifier, AdapterOptions, FuseAdapter};
use fuser::MountOption;
use std::any::Any;
use std::ffi::CString;
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A client to mount, and anything that must live as long as the mount (an in-process
/// emulator, for `demo`).
pub struct Backend {
    pub client: Arc<dyn AltinnClient>,
    pub keep_alive: Option<Box<dyn Any + Send>>,
    /// The expiry of the token in use, for `altinnfs status`.
    pub token_watch: Option<Arc<crate::metrics::TokenWatch>>,
    /// The platform and token subject that name the metadata index (SPEC §7.1).
    pub identity: Option<crate::fs::IndexIdentity>,
}

pub type BackendFuture = Pin<Box<dyn Future<Output = Result<Backend, String>> + Send>>;

/// The mount options of SPEC §1: fsname/subtype `altinnfs`, `default_permissions`,
/// `allow_other` only when asked, `ro` for read-only mounts.
pub fn mount_options(read_only: bool, allow_other: bool) -> Vec<MountOption> {
    let mut o = vec![
        MountOption::FSName("altinnfs".into()),
        MountOption::Subtype("altinnfs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoExec,
    ];
    if allow_other {
        o.push(MountOption::AllowOther);
    }
    o.push(if read_only {
        MountOption::RO
    } else {
        MountOption::RW
    });
    o
}

/// mount(2) of /dev/fuse at `mountpoint` with type `fuse.<subtype>` and source `<fsname>`;
/// returns the device fd the session serves.
fn mount_as_root(
    mountpoint: &Path,
    options: &[MountOption],
) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::fs::MetadataExt;
    let root_mode = std::fs::metadata(mountpoint)?.mode();
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")?;
    let mut data = format!(
        "fd={},rootmode={:o},user_id={},group_id={}",
        dev.as_raw_fd(),
        root_mode & libc::S_IFMT,
        unsafe { libc::getuid() },
        unsafe { libc::getgid() }
    );
    let mut source = "altinnfs".to_string();
    let mut fstype = "fuse".to_string();
    let mut flags: libc::c_ulong = 0;
    for o in options {
        match o {
            MountOption::FSName(n) => source = n.clone(),
            MountOption::Subtype(t) => fstype = format!("fuse.{t}"),
            MountOption::DefaultPermissions => data.push_str(",default_permissions"),
            MountOption::AllowOther => data.push_str(",allow_other"),
            MountOption::RO => flags |= libc::MS_RDONLY,
            MountOption::NoDev => flags |= libc::MS_NODEV,
            MountOption::NoSuid => flags |= libc::MS_NOSUID,
            MountOption::NoExec => flags |= libc::MS_NOEXEC,
            MountOption::NoAtime => flags |= libc::MS_NOATIME,
            _ => {}
        }
    }
    let c = |s: &str| {
        CString::new(s).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in mount option")
        })
    };
    let (c_source, c_target, c_type, c_data) = (
        c(&source)?,
        CString::new(mountpoint.as_os_str().as_bytes())?,
        c(&fstype)?,
        c(&data)?,
    );
    let r = unsafe {
        libc::mount(
            c_source.as_ptr(),
            c_target.as_ptr(),
            c_type.as_ptr(),
            flags,
            c_data.as_ptr() as *const libc::c_void,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(OwnedFd::from(dev))
}

/// A live mount served by a background thread.
pub struct MountHandle<C: AltinnClient + ?Sized> {
    fs: Arc<AltinnFs<C>>,
    mountpoint: PathBuf,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    unmounted: bool,
}

/// Mount `fs` at `mountpoint`, answering requests on `rt`.
pub fn mount_background<C: AltinnClient + ?Sized>(
    fs: Arc<AltinnFs<C>>,
    rt: tokio::runtime::Handle,
    mountpoint: &Path,
    options: &[MountOption],
    adapter_opts: AdapterOptions,
) -> std::io::Result<MountHandle<C>> {
    let mountpoint = mountpoint.canonicalize()?;
    keep_reply_buffers();
    let adapter = FuseAdapter::new(fs.clone(), rt, adapter_opts);
    let device = adapter.device_slot();
    let session = if unsafe { libc::geteuid() } == 0 {
        // As root, mount ourselves so the kernel records the type `fuse.altinnfs` and the
        // source ORG/APP (fuser's own root path says plain `fuse`), which `findmnt -t` and
        // `umount -a -t fuse.altinnfs` rely on.
        let fd = mount_as_root(&mountpoint, options)?;
        let acl = if options.contains(&MountOption::AllowOther) {
            fuser::SessionACL::All
        } else {
            fuser::SessionACL::Owner
        };
        fuser::Session::from_fd(adapter, fd, acl)
    } else {
        fuser::Session::new(adapter, &mountpoint, options)?
    };
    start_notifier(&fs, session.notifier());
    device.store(session.as_fd().as_raw_fd(), Ordering::Relaxed);
    let mut session = session;
    let thread = std::thread::Builder::new()
        .name("altinnfs-fuse".into())
        .spawn(move || session.run())?;
    Ok(MountHandle {
        fs,
        mountpoint,
        thread: Some(thread),
        unmounted: false,
    })
}

impl<C: AltinnClient + ?Sized> MountHandle<C> {
    pub fn fs(&self) -> &Arc<AltinnFs<C>> {
        &self.fs
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The session ended (someone ran `fusermount3 -u`).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Wait for pending uploads (up to `drain`), unmount (lazily when the mount is busy, e.g.
    /// a reader still has a file open) and wait briefly for the session to end.
    pub fn unmount_with(&mut self, rt: &tokio::runtime::Handle, drain: Duration) {
        if self.unmounted {
            return;
        }
        self.unmounted = true;
        let fs = self.fs.clone();
        if fs.inflight() > 0 {
            tracing::info!(
                "waiting for {} pending upload(s) before unmounting",
                fs.inflight()
            );
            let fut = async move { fs.drain(drain).await };
            // Works from inside or outside the runtime.
            let _ = std::thread::scope(|s| s.spawn(|| rt.block_on(fut)).join());
        }
        if !self.is_finished() {
            unmount_path(&self.mountpoint);
        }
        if let Some(t) = self.thread.take() {
            let start = Instant::now();
            while !t.is_finished() && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                if let Ok(Err(e)) = t.join() {
                    tracing::warn!("FUSE session ended with: {e}");
                }
            } else {
                tracing::info!(
                    "mount detached; files still open keep the session alive until closed"
                );
            }
        }
    }
}

impl<C: AltinnClient + ?Sized> Drop for MountHandle<C> {
    fn drop(&mut self) {
        if !self.unmounted {
            self.unmounted = true;
            if !self.is_finished() {
                unmount_path(&self.mountpoint);
            }
            if let Some(t) = self.thread.take() {
                let start = Instant::now();
                while !t.is_finished() && start.elapsed() < Duration::from_secs(5) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

/// Unmount: plain umount2, lazily when busy, `fusermount3 -u` when not privileged.
pub fn unmount_path(mountpoint: &Path) {
    let Ok(c) = CString::new(mountpoint.as_os_str().as_bytes()) else {
        return;
    };
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return;
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EBUSY) => {
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
                tracing::warn!(
                    "lazy unmount of {}: {}",
                    mountpoint.display(),
                    std::io::Error::last_os_error()
                );
            }
        }
        Some(libc::EPERM) => {
            let ok = std::process::Command::new("fusermount3")
                .arg("-u")
                .arg(mountpoint)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = std::process::Command::new("fusermount3")
                    .arg("-uz")
                    .arg(mountpoint)
                    .status();
            }
        }
        Some(libc::EINVAL) => {} // not mounted any more
        _ => tracing::warn!("unmount {}: {err}", mountpoint.display()),
    }
}

/// Kernel readahead for the mount. FUSE starts at 128 KiB, which caps a sequential reader
/// at one small request per round trip; blobs are streamed anyway, so read further ahead.
const READ_AHEAD_KB: u32 = 4096;

/// Read replies are 1 MiB buffers (fuser copies each reply into one): keep such buffers in
/// the heap for reuse instead of mapping and unmapping them per reply, which cost a page fault
/// per page (perf: about a third of the sequential read path).
fn keep_reply_buffers() {
    // SAFETY: mallopt only tunes glibc's allocator; called before the session starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// Best effort: raise `/sys/class/bdi/MAJ:MIN/read_ahead_kb` of the mount (needs root or a
/// writable sysfs; otherwise the kernel default stays and only sequential speed suffers).
fn raise_readahead(mountpoint: &Path, kb: u32) {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(mountpoint) else {
        return;
    };
    let dev = md.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let path = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    match std::fs::write(&path, kb.to_string()) {
        Ok(()) => tracing::debug!("{path} = {kb}"),
        Err(e) => tracing::debug!("cannot raise readahead ({path}): {e}"),
    }
}

/// What to do when the mount cannot even read the app's metadata.
fn mount_hint(e: &crate::altinn::AltinnError) -> &'static str {
    use crate::altinn::AltinnError as E;
    match e {
        E::Status { status: 401, .. } | E::Auth(_) => {
            "the token was refused: expired, or not for this environment; get a new one"
        }
        E::Status { status: 403, .. } => "the token may not read this app",
        E::Status { status: 404, .. } => {
            "no app answers at this URL; check ORG/APP and --app-url or --env"
        }
        E::Status { status: 409, .. } => {
            "the URL serves another app; check ORG/APP against --app-url"
        }
        E::Status { .. } => "the server failed; try again later or check its status",
        E::Network { .. } | E::Truncated { .. } => {
            "cannot reach the server; check the URL, the network and any proxy"
        }
        E::Decode { .. } => "the URL does not answer like an Altinn app; check --app-url",
        E::Local(_) => "a local problem; see the message",
    }
}

/// `ORG/APP` as given on the command line.
pub fn parse_app(app: &str) -> Result<(String, String), String> {
    match app.split_once('/') {
        Some((o, a)) if !o.is_empty() && !a.is_empty() && !a.contains('/') => {
            Ok((o.to_string(), a.to_string()))
        }
        _ => Err(format!("{app:?}: expected ORG/APP, e.g. ttd/altinnfs-demo")),
    }
}

/// The one retry policy (per request, per page, the POST probe) around a client.
pub(crate) fn retrying<C: AltinnClient>(client: C, page_size: usize) -> Retrying<C> {
    Retrying::new(
        client,
        RetryPolicy::default(),
        PagePolicy::with_size(page_size),
    )
}

/// The client for `altinnfs mount ORG/APP`: the reqwest client from options.
pub fn http_backend(app: String, opts: MountOptions) -> BackendFuture {
    Box::pin(async move {
        let (org, name) = parse_app(&app)?;
        let (app_url, platform_url) = opts.endpoints(&org, &name)?;
        tracing::info!("app API {app_url}, platform {platform_url}");
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(opts.timeout.max(1)))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let tokens = crate::altinn::auth::provider_from_options(&opts, &platform_url, http)
            .await
            .map_err(|e| e.to_string())?;
        let token = tokens.token().await.map_err(|e| e.to_string())?;
        let identity = Some(crate::fs::IndexIdentity {
            platform_url: platform_url.clone(),
            subject: crate::fs::index::token_subject(&token),
        });
        drop(token);
        let tokens = Arc::new(crate::metrics::WatchedTokens::new(tokens));
        let token_watch = Some(tokens.watch.clone());
        let mut cfg = crate::altinn::http::HttpConfig::new(&app_url, &platform_url, &app);
        cfg.timeout = Duration::from_secs(opts.timeout.max(1));
        let client =
            crate::altinn::http::HttpClient::new(cfg, tokens).map_err(|e| e.to_string())?;
        Ok(Backend {
            client: Arc::new(retrying(client, opts.page_size as usize)),
            keep_alive: None,
            token_watch,
            identity,
        })
    })
}

/// The client for `altinnfs demo`: the emulator with the sample app, in this process, on a
/// loopback port, with its data in a private temporary directory removed at unmount.
pub fn demo_backend() -> BackendFuture {
    Box::pin(async move {
        use crate::emulator::{Emulator, EmulatorConfig};
        let dir = tempfile::Builder::new()
            .prefix("altinnfs-demo-")
            .tempdir()
            .map_err(|e| format!("demo data dir: {e}"))?;
        let mut cfg = EmulatorConfig::new(dir.path().join("data"));
        cfg.sample = true;
        let emu = Emulator::start(cfg)
            .await
            .map_err(|e| format!("demo emulator: {e}"))?;
        eprintln!(
            "altinnfs demo: emulator at {} serving {} (token: altinnfs token --url {} --org ttd)",
            emu.base_url(),
            emu.app_id(),
            emu.base_url()
        );
        let identity = Some(crate::fs::IndexIdentity {
            platform_url: emu.base_url(),
            subject: crate::fs::index::token_subject(&emu.org_token("ttd")),
        });
        let tokens = Arc::new(crate::metrics::WatchedTokens::new(Arc::new(
            crate::altinn::auth::StaticToken(emu.org_token("ttd")),
        )));
        let token_watch = Some(tokens.watch.clone());
        let cfg =
            crate::altinn::http::HttpConfig::new(&emu.app_url(), &emu.base_url(), &emu.app_id());
        let client =
            crate::altinn::http::HttpClient::new(cfg, tokens).map_err(|e| e.to_string())?;
        Ok(Backend {
            client: Arc::new(retrying(client, PagePolicy::default().size)),
            keep_alive: Some(Box::new((emu, dir))),
            token_watch,
            identity,
        })
    })
}

fn init_logging(opts: &MountOptions, default_file: Option<PathBuf>) {
    let file = opts.log_file.clone().or(default_file);
    if let Err(e) =
        crate::logging::init_with(opts.log_level.as_deref(), file.as_deref(), opts.log_format)
    {
        eprintln!("altinnfs: {e}");
    }
}

/// Readiness report from the mounting child to the waiting parent.
struct Ready(Option<std::fs::File>);

impl Ready {
    fn send(&mut self, msg: &str) {
        use std::io::Write;
        if let Some(mut f) = self.0.take() {
            let _ = f.write_all(msg.as_bytes());
        }
    }
}

/// Daemonise: fork; the parent waits for the child's report and exits 0 when the mount is
/// ready, or prints the error and exits 1. Returns the child's end of the pipe.
fn daemonise() -> Result<Ready, String> {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    let (r, w) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            drop(r);
            unsafe { libc::setsid() };
            Ok(Ready(Some(w)))
        }
        _ => {
            drop(w);
            let mut s = String::new();
            let mut r = r;
            let _ = r.read_to_string(&mut s);
            if s.starts_with("OK") {
                std::process::exit(0);
            }
            let msg = s.strip_prefix("ERR ").unwrap_or(&s).trim().to_string();
            if msg.is_empty() {
                eprintln!("altinnfs: the mount process exited before the mount was ready");
            } else {
                eprintln!("altinnfs: {msg}");
            }
            std::process::exit(1);
        }
    }
}

fn detach_stdio() {
    let Ok(c) = CString::new("/dev/null") else {
        return;
    };
    unsafe {
        let fd = libc::open(c.as_ptr(), libc::O_RDWR);
        if fd >= 0 {
            libc::dup2(fd, 0);
            libc::dup2(fd, 1);
            libc::dup2(fd, 2);
            if fd > 2 {
                libc::close(fd);
            }
        }
    }
}

/// Answer `altinnfs status` over a socket in the spool dir (a failure is logged, not fatal).
fn start_status(
    fs: &Arc<AltinnFs<dyn AltinnClient>>,
    opts: &MountOptions,
    mountpoint: &Path,
    (counters, token): (
        Arc<crate::metrics::Counters>,
        Option<Arc<crate::metrics::TokenWatch>>,
    ),
    rt: &tokio::runtime::Handle,
) -> Option<crate::status::StatusServer> {
    let app = fs.metadata().id.clone();
    let (app_url, platform_url) = parse_app(&app)
        .and_then(|(o, a)| opts.endpoints(&o, &a))
        .unwrap_or_default();
    let environment = match opts.env {
        Some(e) => format!("{e:?}").to_lowercase(),
        None if app_url.is_empty() => "demo".into(),
        None => "custom URLs".into(),
    };
    let fs2 = fs.clone();
    let fs3 = fs.clone();
    let source = crate::status::StatusSource {
        mountpoint: mountpoint
            .canonicalize()
            .unwrap_or(mountpoint.to_path_buf()),
        app,
        environment,
        app_url,
        platform_url,
        read_only: opts.read_only,
        spool_dir: fs.config().spool_dir.clone(),
        started: chrono::Utc::now(),
        counters: Some(counters),
        token,
        inflight: Box::new(move || fs2.inflight()),
        index: Box::new(move || {
            let mut st = fs3
                .meta_index()
                .and_then(|i| crate::status::IndexStatus::of(i))?;
            st.listings = fs3.listings_under_way();
            Some(st)
        }),
    };
    match crate::status::serve(Arc::new(source), rt) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("no status socket (altinnfs status will not see this mount): {e}");
            None
        }
    }
}

/// `altinnfs mount` / `altinnfs demo`: mount and serve until unmounted. Call it before any
/// thread or runtime exists (it forks to daemonise unless `opts.foreground`).
pub fn run_mount(
    mountpoint: &Path,
    opts: MountOptions,
    backend: impl FnOnce() -> BackendFuture,
) -> Result<(), String> {
    // The process holds a bearer token and personal data: no core dumps, and no ptrace or
    // /proc/PID/{environ,mem} for other users.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // glibc gives every thread its own heap arena; a few arenas keep the resident memory of
    // a mount with a large listing bounded (the memory goal is 128 MiB).
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        // Read and write buffers are up to 1 MiB per request: serve them from the heap, not
        // a fresh mmap (and 256 page faults) per request.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 8 << 20);
    }
    let md = std::fs::metadata(mountpoint)
        .map_err(|e| format!("mountpoint {}: {e}", mountpoint.display()))?;
    if !md.is_dir() {
        return Err(format!(
            "mountpoint {}: not a directory",
            mountpoint.display()
        ));
    }
    let cfg = fs_config(&opts)?;
    crate::fs::make_private_dir(&cfg.spool_dir)
        .map_err(|e| format!("spool dir {}: {e}", cfg.spool_dir.display()))?;
    let mut ready = if opts.foreground {
        init_logging(&opts, None);
        Ready(None)
    } else {
        let r = daemonise()?;
        init_logging(&opts, Some(cfg.spool_dir.join("altinnfs.log")));
        r
    };
    let daemon = ready.0.is_some();
    let result = serve(mountpoint, opts, cfg, backend, &mut ready);
    if let Err(e) = &result {
        tracing::error!("{e}");
        if daemon && ready.0.is_some() {
            // The waiting parent prints it and exits 1.
            ready.send(&format!("ERR {e}\n"));
            std::process::exit(1);
        }
    }
    result
}

type Built = (
    Arc<AltinnFs<dyn AltinnClient>>,
    Option<Box<dyn std::any::Any + Send>>,
    crate::unsent::resend::Resender<dyn AltinnClient>,
    (
        Arc<crate::metrics::Counters>,
        Option<Arc<crate::metrics::TokenWatch>>,
    ),
);

/// The client (counted), the app's metadata, the core and its index: everything a mount
/// needs before it asks the kernel.
async fn build_fs(cfg: FsConfig, backend: impl FnOnce() -> BackendFuture) -> Result<Built, String> {
    let mut b = backend().await?;
    let counting = crate::metrics::CountingClient::new(b.client.clone());
    let counters = counting.counters.clone();
    b.client = Arc::new(counting);
    let meta = b
        .client
        .application_metadata()
        .await
        .map_err(|e| format!("cannot read the app's metadata: {e} ({})", mount_hint(&e)))?;
    let resender = crate::unsent::resend::Resender::new(b.client.clone(), meta.clone());
    let fs = AltinnFs::with_metadata(b.client, cfg, meta).map_err(|e| e.to_string())?;
    if let Some(id) = &b.identity {
        fs.open_index(id).await?;
    }
    let status = (counters, b.token_watch.clone());
    Ok((Arc::new(fs), b.keep_alive, resender, status))
}

/// Upload what `unsent/` holds: once now, then with backoff (`--retry-unsent`); what it stores
/// shows in the mount at once.
fn start_unsent_retries(
    fs: &Arc<AltinnFs<dyn AltinnClient>>,
    resender: crate::unsent::resend::Resender<dyn AltinnClient>,
    rt: &tokio::runtime::Handle,
) {
    let dir = fs.unsent_dir().to_path_buf();
    let shown = fs.clone();
    let resender = resender.on_stored(Box::new(move |party, guid, el| {
        shown.element_stored(party, guid, el.clone())
    }));
    rt.spawn(crate::unsent::auto::retry_loop(resender, dir));
}

/// Serve until SIGTERM, SIGINT or an external unmount.
async fn until_signal_or_unmount(handle: &MountHandle<dyn AltinnClient>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    loop {
        tokio::select! {
            _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => break,
            _ = async { match int.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if handle.is_finished() { break; }
            }
        }
    }
}

fn serve(
    mountpoint: &Path,
    opts: MountOptions,
    cfg: FsConfig,
    backend: impl FnOnce() -> BackendFuture,
    ready: &mut Ready,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("altinnfs-rt")
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let (fs, keep, resender, status) = rt.block_on(build_fs(cfg, backend))?;
    let mut options = mount_options(opts.read_only, opts.allow_other);
    for o in options.iter_mut() {
        if let MountOption::FSName(n) = o {
            // `mount` and `findmnt` show the app as the source, like `host:path` for sshfs.
            *n = fs.metadata().id.clone();
        }
    }
    let adapter_opts = AdapterOptions {
        busy_poll: Duration::from_micros(opts.busy_poll_us),
        direct_io: opts.direct_io,
    };
    let mut handle = mount_background(
        fs.clone(),
        rt.handle().clone(),
        mountpoint,
        &options,
        adapter_opts,
    )
    .map_err(|e| format!("mount {}: {e}", mountpoint.display()))?;
    tracing::info!("mounted {} at {}", fs.metadata().id, mountpoint.display());
    raise_readahead(mountpoint, READ_AHEAD_KB);
    if opts.foreground {
        eprintln!(
            "altinnfs: mounted {} at {} (Ctrl-C unmounts)",
            fs.metadata().id,
            mountpoint.display()
        );
    }
    let _status_server = start_status(&fs, &opts, mountpoint, status, rt.handle());
    let poller = rt.block_on(async { fs.start_poller() });
    ready.send("OK\n");
    if opts.retry_unsent && !opts.read_only {
        start_unsent_retries(&fs, resender, rt.handle());
    }
    if !opts.foreground {
        detach_stdio();
    }
    rt.block_on(until_signal_or_unmount(&handle));
    tracing::info!("unmounting {}", mountpoint.display());
    handle.unmount_with(rt.handle(), Duration::from_secs(600));
    drop(poller);
    drop(handle);
    drop(_status_server);
    drop(keep);
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}

/// The core's configuration from the mount options (the config flows one way: nothing in
/// `fs/` knows the command line).
pub fn fs_config(opts: &MountOptions) -> Result<FsConfig, String> {
    let spool = match &opts.spool_dir {
        Some(d) => d.clone(),
        None => {
            let home = std::env::var_os("HOME").ok_or("HOME is not set; give --spool-dir")?;
            std::path::PathBuf::from(home).join(".cache/altinnfs")
        }
    };
    let mut c = FsConfig::new(spool);
    c.read_only = opts.read_only;
    c.metadata_ttl = Duration::from_secs(opts.metadata_ttl);
    c.cache_entries = opts.cache_entries.max(16);
    if let Some(u) = opts.uid {
        c.uid = u;
    }
    if let Some(g) = opts.gid {
        c.gid = g;
    }
    c.file_mode = opts.file_mode & 0o7777;
    c.dir_mode = opts.dir_mode & 0o7777;
    c.parties = opts.party.clone();
    for q in &opts.query {
        let (k, v) = q
            .split_once('=')
            .ok_or_else(|| format!("--query {q}: expected KEY=VALUE"))?;
        c.query.push((k.to_string(), v.to_string()));
    }
    c.hard_delete = opts.hard;
    c.form_json = opts.form_json;
    c.stateless_party = opts
        .stateless_party
        .clone()
        .or_else(|| opts.party.first().cloned());
    if let Some(p) = &c.stateless_party {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "--stateless-party {p}: expected a party id (digits)"
            ));
        }
    }
    c.cache_bytes = opts.cache_size * 1024 * 1024;
    c.prefetch_files = opts.prefetch_files;
    c.index = index_config(opts).ok();
    c.on_change = opts.on_change.clone();
    Ok(c)
}

/// The metadata index options (SPEC §7.1–7.3: `--cache-dir`, `--poll-interval`,
/// `--full-refresh-hours`, `--feed-days`), for a mount and for the `cache`/`changes` commands.
pub fn index_config(opts: &MountOptions) -> Result<IndexConfig, String> {
    let cache_dir = match &opts.cache_dir {
        Some(d) => d.clone(),
        None => crate::fs::index::default_cache_dir()?,
    };
    let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
    Ok(IndexConfig {
        cache_dir,
        poll_interval: secs(opts.poll_interval),
        full_refresh: secs(opts.full_refresh_hours.saturating_mul(3600)),
        feed_retention: Duration::from_secs(opts.feed_days.max(1).saturating_mul(86_400)),
        page_size: 100,
        list_parallel: opts.list_parallel as usize,
    })
}
