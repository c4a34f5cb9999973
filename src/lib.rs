//! altinnfs: mount an Altinn 3 app as a filesystem.
pub mod altinn;
pub mod busy_poll;
pub mod cache_cmd;
pub mod changes_cmd;
pub mod cli;
pub mod cpu_pressure;
pub mod emulator;
pub mod fs;
pub mod fuse;
pub mod logging;
pub mod metrics;
pub mod mount;
pub mod status;
pub mod unsent;
