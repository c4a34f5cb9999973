//! The bits of `open(2)` flags that change what the core does, as a type (the kernel's raw
//! `i32` stays in the adapter).

/// What an open or create asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenFlags {
    /// Opened for writing (O_WRONLY or O_RDWR).
    pub write: bool,
    /// O_TRUNC: start from an empty file.
    pub truncate: bool,
    /// O_EXCL: create must not find the name.
    pub exclusive: bool,
}

impl OpenFlags {
    pub fn from_raw(flags: i32) -> Self {
        Self {
            write: flags & libc::O_ACCMODE != libc::O_RDONLY,
            truncate: flags & libc::O_TRUNC != 0,
            exclusive: flags & libc::O_EXCL != 0,
        }
    }
}

/// The kernel's raw open flags.
impl From<i32> for OpenFlags {
    fn from(raw: i32) -> Self {
        Self::from_raw(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_flags() {
        let f = OpenFlags::from_raw;
        assert_eq!(f(libc::O_RDONLY), OpenFlags::default());
        assert!(f(libc::O_WRONLY).write && f(libc::O_RDWR).write);
        assert!(!f(libc::O_RDONLY | libc::O_TRUNC).write);
        assert!(f(libc::O_RDONLY | libc::O_TRUNC).truncate);
        let c = f(libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL);
        assert!(c.write && c.exclusive && !c.truncate);
    }
}
