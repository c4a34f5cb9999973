//! The local, disk-backed Altinn emulator (SPEC §6).
use crate::cli::{EmulatorArgs, TokenArgs};

pub async fn run(_args: EmulatorArgs) -> anyhow_free::Result {
    Err("emulator not built yet".into())
}

pub async fn token_command(_args: TokenArgs) -> anyhow_free::Result {
    Err("token not built yet".into())
}

pub mod anyhow_free {
    pub type Result = std::result::Result<(), String>;
}
