//! Instance actions: create, delete, complete (confirm) and move the process on. The server
//! calls and what their refusals mean for the user; the facade then updates the tree with the
//! instance the server answered. Holds no state but the client (which retries).

use super::error::{ErrorKind, FsError, FsResult};
use crate::altinn::client::AltinnClient;
use crate::altinn::ids::{InstanceId, PartyId};
use crate::altinn::model::Instance;
use std::sync::Arc;

/// What `setxattr` on an instance directory asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `user.altinn.confirm=complete`
    Complete,
    /// `user.altinn.process=next[:ACTION]`
    ProcessNext(Option<String>),
}

impl Action {
    /// The action of an attribute: Ok(None) for attributes that are no action,
    /// Err for an action attribute with a value it does not know.
    pub fn parse(name: &str, value: &str) -> Result<Option<Action>, ErrorKind> {
        match (name, value) {
            ("user.altinn.confirm", "complete") => Ok(Some(Action::Complete)),
            ("user.altinn.process", v) if v == "next" || v.starts_with("next:") => {
                let action = v.strip_prefix("next:").filter(|a| !a.is_empty());
                Ok(Some(Action::ProcessNext(action.map(String::from))))
            }
            ("user.altinn.confirm", _) | ("user.altinn.process", _) => Err(ErrorKind::Invalid(
                format!("{name}: unknown value {value:?}"),
            )),
            _ => Ok(None),
        }
    }
}

pub struct InstanceActions<C: AltinnClient + ?Sized> {
    client: Arc<C>,
    hard_delete: bool,
}

impl<C: AltinnClient + ?Sized> InstanceActions<C> {
    pub fn new(client: Arc<C>, hard_delete: bool) -> Self {
        Self {
            client,
            hard_delete,
        }
    }

    pub async fn create(&self, party: PartyId, path: &str) -> FsResult<Instance> {
        self.client
            .create_instance(party)
            .await
            .map_err(|e| FsError::server(path, "POST instances", e))
    }

    /// Delete an instance (soft unless the mount says hard); EPERM when Altinn refuses.
    pub async fn delete(&self, r: &InstanceId, path: &str) -> FsResult<()> {
        let hard = self.hard_delete;
        self.client
            .delete_instance(r, hard)
            .await
            .map_err(|err| match err.status() {
                Some(400) | Some(403) | Some(409) => FsError::refused(
                    path,
                    format!("Altinn refused to delete the instance: {err}"),
                ),
                _ => FsError::server(path, "DELETE instance", err),
            })
            .map(|_| ())
    }

    /// Run `action`; returns the instance as it is afterwards.
    pub async fn run(&self, r: &InstanceId, action: &Action, path: &str) -> FsResult<Instance> {
        match action {
            Action::Complete => self
                .client
                .complete_instance(r)
                .await
                .map_err(|e| FsError::server(path, "POST complete", e)),
            Action::ProcessNext(a) => {
                self.process_next(r, a.as_deref(), path).await?;
                self.client
                    .get_instance(r)
                    .await
                    .map_err(|e| FsError::server(path, "GET instance", e))
            }
        }
    }

    async fn process_next(&self, r: &InstanceId, action: Option<&str>, path: &str) -> FsResult<()> {
        self.client.process_next(r, action).await.map_err(|e| {
            let e = FsError::server(path, "PUT process/next", e);
            if let ErrorKind::Server { err, .. } = &e.kind {
                for i in err.issue_codes() {
                    tracing::warn!("{path}: process/next validation issue: {i}");
                }
                if matches!(err.status(), Some(400) | Some(403) | Some(409)) {
                    return FsError::refused(path, format!("process/next refused: {err}"));
                }
            }
            e
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_name_actions() {
        let p = |n, v| Action::parse(n, v).map_err(|e| format!("{e:?}"));
        assert_eq!(
            p("user.altinn.confirm", "complete"),
            Ok(Some(Action::Complete))
        );
        assert_eq!(
            p("user.altinn.process", "next"),
            Ok(Some(Action::ProcessNext(None)))
        );
        assert_eq!(
            p("user.altinn.process", "next:reject"),
            Ok(Some(Action::ProcessNext(Some("reject".into()))))
        );
        assert_eq!(
            p("user.altinn.process", "next:"),
            Ok(Some(Action::ProcessNext(None)))
        );
        assert!(p("user.altinn.confirm", "yes").is_err());
        assert!(p("user.altinn.process", "back").is_err());
        assert_eq!(p("user.other", "x"), Ok(None));
    }
}
