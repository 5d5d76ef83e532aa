//! The zero-copy fast path: splice(2) from one socket into a pipe and from the pipe into the
//! other socket, so bytes never enter user space. Driven by tokio's readiness
//! (`readable`/`writable` + `try_io`), with every descriptor non-blocking.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};

/// Asked for; the kernel may cap it (/proc/sys/fs/pipe-max-size) or refuse (then 64 KiB).
const PIPE_SIZE: i32 = 1 << 20;

pub struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    cap: usize,
}

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK
}

impl Pipe {
    pub fn new() -> io::Result<Pipe> {
        let (r, w) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        let cap = fcntl(&w, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE)).map_or(1 << 16, |n| n as usize);
        Ok(Pipe { r, w, cap })
    }

    /// Moves what `src` has (at most a pipe's worth) into the empty pipe; 0 = EOF.
    pub fn fill(&self, src: impl AsFd) -> io::Result<usize> {
        Ok(splice(src, None, &self.w, None, self.cap, flags())?)
    }

    /// Moves up to `len` bytes from the pipe into `dst`.
    pub fn drain(&self, dst: impl AsFd, len: usize) -> io::Result<usize> {
        Ok(splice(&self.r, None, dst, None, len, flags())?)
    }
}
