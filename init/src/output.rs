//! The output of the processes init starts when the image lists several: each writes its
//! stdout and stderr into a pipe of its own, and init copies every line to the console as
//! `[NAME] line`, so the console tells whose line it is. A line longer than [`MAX_LINE`] is cut
//! and written in pieces; a last line without a newline is written when the pipe closes. The
//! pipes are non-blocking and read a bounded amount at a time, so a chatty process never
//! holds up supervision.

use nix::errno::Errno;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The longest piece of a line written to the console at once (bytes, prefix excluded).
pub const MAX_LINE: usize = 4096;

/// The most bytes read from one pipe before init looks at its signals again.
pub const READ_BUDGET: usize = 64 * 1024;

/// Splits a process's output into prefixed console lines.
#[derive(Debug)]
pub struct Lines {
    prefix: Vec<u8>,
    pending: Vec<u8>,
}

impl Lines {
    /// Lines of the process `name`, prefixed `[name] `.
    pub fn new(name: &str) -> Lines {
        Lines {
            prefix: format!("[{name}] ").into_bytes(),
            pending: Vec::new(),
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(&self.pending);
        out.push(b'\n');
        self.pending.clear();
    }

    /// Takes bytes read from the pipe; returns the console lines they complete (each
    /// prefixed, each ending in a newline; empty if none), keeping the unfinished rest.
    pub fn push(&mut self, mut data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let room = MAX_LINE.saturating_sub(self.pending.len());
            // A newline right after a full piece still ends that piece's line.
            let window = data.get(..data.len().min(room + 1)).unwrap_or(data);
            if let Some(i) = window.iter().position(|&b| b == b'\n') {
                let (line, rest) = data.split_at(i);
                self.pending.extend_from_slice(line);
                self.emit(&mut out);
                data = rest.get(1..).unwrap_or_default();
            } else if data.len() > room {
                let (piece, rest) = data.split_at(room);
                self.pending.extend_from_slice(piece);
                self.emit(&mut out);
                data = rest;
            } else {
                self.pending.extend_from_slice(data);
                break;
            }
        }
        out
    }

    /// The unfinished last line, as a console line (empty if there is none).
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.pending.is_empty() {
            self.emit(&mut out);
        }
        out
    }
}

/// The read end of one process's output pipe.
#[derive(Debug)]
pub struct Pipe {
    fd: Option<OwnedFd>,
    lines: Lines,
}

impl Pipe {
    /// `fd` must be non-blocking.
    pub fn new(fd: OwnedFd, name: &str) -> Pipe {
        Pipe {
            fd: Some(fd),
            lines: Lines::new(name),
        }
    }

    /// The descriptor to poll, while the pipe is open.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|f| f.as_fd())
    }

    /// Reads what the pipe holds, up to `budget` bytes, and writes the lines it completes to
    /// `console`. At the end of the pipe (every writer gone) or on a read error, writes the
    /// unfinished last line and closes it.
    pub fn pump(&mut self, budget: usize, console: &mut impl Write) {
        let mut buf = [0u8; 16 * 1024];
        let mut left = budget;
        while left > 0 {
            let Some(fd) = self.fd.as_ref() else { return };
            let want = buf.len().min(left);
            let Some(chunk) = buf.get_mut(..want) else {
                return;
            };
            match nix::unistd::read(fd, chunk) {
                Ok(0) => break,
                Ok(n) => {
                    left = left.saturating_sub(n);
                    let lines = self.lines.push(chunk.get(..n).unwrap_or_default());
                    // Logging never stops init.
                    let _ = console.write_all(&lines);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(e) => {
                    crate::warn!("reading the output of a process: {}", e.desc());
                    break;
                }
            }
            if left == 0 {
                return;
            }
        }
        self.close(console);
    }

    /// Writes the unfinished last line and closes the pipe.
    pub fn close(&mut self, console: &mut impl Write) {
        let _ = console.write_all(&self.lines.finish());
        self.fd = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(l: &mut Lines, s: &str) -> String {
        String::from_utf8(l.push(s.as_bytes())).unwrap()
    }

    #[test]
    fn lines_are_prefixed_and_joined_across_reads() {
        let mut l = Lines::new("web");
        assert_eq!(push(&mut l, "hello\nwor"), "[web] hello\n");
        assert_eq!(push(&mut l, "ld\n\nlast"), "[web] world\n[web] \n");
        assert_eq!(push(&mut l, ""), "");
        assert_eq!(String::from_utf8(l.finish()).unwrap(), "[web] last\n");
        assert!(l.finish().is_empty(), "written once");
    }

    #[test]
    fn long_lines_are_cut_at_4_kib() {
        let mut l = Lines::new("x");
        // Exactly 4 KiB, then its newline in the next read: one line, no empty piece.
        assert_eq!(push(&mut l, &"a".repeat(MAX_LINE)), "");
        assert_eq!(
            push(&mut l, "\n"),
            format!("[x] {}\n", "a".repeat(MAX_LINE))
        );
        // 4 KiB and its newline at once.
        assert_eq!(
            push(&mut l, &format!("{}\n", "b".repeat(MAX_LINE))),
            format!("[x] {}\n", "b".repeat(MAX_LINE))
        );
        // 10,000 bytes: two full pieces, the rest waits for its newline.
        let out = push(&mut l, &"c".repeat(10_000));
        let c = "c".repeat(MAX_LINE);
        assert_eq!(out, format!("[x] {c}\n[x] {c}\n"));
        assert_eq!(
            push(&mut l, "d\n"),
            format!("[x] {}d\n", "c".repeat(10_000 - 2 * MAX_LINE))
        );
        // A long final line without a newline.
        assert_eq!(
            push(&mut l, &"e".repeat(MAX_LINE + 1)),
            format!("[x] {}\n", "e".repeat(MAX_LINE))
        );
        assert_eq!(String::from_utf8(l.finish()).unwrap(), "[x] e\n");
    }

    #[test]
    fn a_pipe_is_read_to_its_end() {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        fcntl(&r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
        let mut pipe = Pipe::new(r, "p");
        let mut console = Vec::new();
        nix::unistd::write(&w, b"one\ntw").unwrap();
        pipe.pump(READ_BUDGET, &mut console);
        assert_eq!(console, b"[p] one\n", "the partial line waits");
        assert!(pipe.fd().is_some());
        // A budget smaller than what is there: the rest stays for the next round.
        nix::unistd::write(&w, b"o\nthree\n").unwrap();
        pipe.pump(3, &mut console);
        assert_eq!(console, b"[p] one\n[p] two\n");
        drop(w);
        pipe.pump(READ_BUDGET, &mut console);
        assert_eq!(console, b"[p] one\n[p] two\n[p] three\n");
        assert!(pipe.fd().is_none(), "closed at its end");
    }
}
