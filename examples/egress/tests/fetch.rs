//! `fetch` against a local HTTP server, and a name that does not resolve.

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::process::Command;

    #[test]
    fn one_line_per_url_and_exit_zero() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0);
                request.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello from outside\n")
                .unwrap();
            String::from_utf8(request).unwrap()
        });
        let ok = format!("http://localhost:{port}/hello");
        let bad = "http://does-not-exist.invalid:80/";
        let out = Command::new(env!("CARGO_BIN_EXE_fetch"))
            .args([&ok, bad])
            .output()
            .unwrap();
        assert!(out.status.success());
        let request = server.join().unwrap();
        assert!(
            request.starts_with(&format!(
                "GET /hello HTTP/1.0\r\nHost: localhost:{port}\r\n"
            )),
            "{request}"
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 2, "{stdout}");
        assert_eq!(
            lines[0],
            format!("fetch {ok}: HTTP/1.0 200 OK: hello from outside")
        );
        assert!(
            lines[1].starts_with(&format!(
                "fetch {bad}: failed: cannot resolve does-not-exist.invalid: "
            )),
            "{}",
            lines[1]
        );
        let usage = Command::new(env!("CARGO_BIN_EXE_fetch")).output().unwrap();
        assert_eq!(usage.status.code(), Some(2));
        assert_eq!(
            String::from_utf8_lossy(&usage.stderr),
            "usage: fetch http://HOST:PORT/PATH ...\n"
        );
    }
}
