use altinnfs::cli::{normalise_args, Cli, Command};
use clap::Parser;

fn main() {
    let pid = std::process::id();
    let cli = Cli::parse_from(normalise_args(std::env::args().collect()));
    let result = match cli.command {
        Command::Emulator(args) => {
            runtime().block_on(async { altinnfs::emulator::run(args.config().await?).await })
        }
        Command::Token(args) => args
            .request()
            .and_then(|req| runtime().block_on(altinnfs::emulator::token_command(req))),
        Command::Unsent(mut args) => {
            root_spool_default(&mut args.opts);
            altinnfs::unsent::command::run(args)
        }
        Command::Status(args) => altinnfs::status::run_command(args),
        Command::Cache(args) => runtime().block_on(altinnfs::cache_cmd::run(args)),
        Command::Changes(args) => runtime().block_on(altinnfs::changes_cmd::run(args)),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "altinnfs",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Mount {
            app,
            mountpoint,
            mut opts,
        } => {
            root_spool_default(&mut opts);
            let o = opts.clone();
            altinnfs::mount::run_mount(&mountpoint, opts, move || {
                altinnfs::mount::http_backend(app, o)
            })
        }
        Command::Demo {
            mountpoint,
            mut opts,
        } => {
            opts.foreground = true;
            altinnfs::mount::run_mount(&mountpoint, opts, altinnfs::mount::demo_backend)
        }
    };
    if let Err(e) = result {
        // A daemonised mount's child has already handed its error to the waiting parent,
        // which printed it: say it once.
        if std::process::id() == pid {
            eprintln!("altinnfs: {e}");
        }
        std::process::exit(1);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// mount(8) at boot (fstab, systemd) runs us without HOME: root then spools under /var/cache,
/// like other system daemons (and `unsent`/`status` look there too).
fn root_spool_default(opts: &mut altinnfs::cli::MountOptions) {
    if opts.spool_dir.is_none()
        && std::env::var_os("HOME").is_none()
        && unsafe { libc::geteuid() } == 0
    {
        opts.spool_dir = Some("/var/cache/altinnfs".into());
    }
}
