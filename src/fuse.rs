//! fuser::Filesystem adapter over the filesystem core; thin.
