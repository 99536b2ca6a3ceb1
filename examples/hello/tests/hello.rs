//! The example driven as a user would drive it: the real binary on a local TCP port, curl.

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};

    struct App(Child);

    impl Drop for App {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Starts the example on a free port; returns it and the port.
    fn start() -> (App, u16) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hello-enclave"))
            .arg("tcp:127.0.0.1:0")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start hello-enclave");
        let out = child.stdout.take().expect("stdout");
        let app = App(child);
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        (app, port)
    }

    /// `curl -k` (the certificate is made at start; trust comes from attestation): status, body.
    fn curl(port: u16, path: &str, args: &[&str]) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-sS", "-k", "--max-time", "10", "-w", "\n%{http_code}"])
            .args(args)
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .output()
            .expect("curl (Debian package curl)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.parse().unwrap(), body.to_owned())
    }

    #[test]
    fn its_own_routes_and_the_mounted_attestation_endpoint() {
        let (_app, port) = start();
        assert_eq!(
            curl(port, "/", &[]),
            (200, "hello from the enclave\n".into())
        );
        assert_eq!(
            curl(port, "/echo", &["--data-binary", "ping"]),
            (200, "ping".into())
        );
        assert_eq!(curl(port, "/nope", &[]).0, 404);
        // The library's endpoint: it checks the nonce, and outside an enclave there is no NSM.
        let (status, body) = curl(port, "/attestation?nonce=zz", &[]);
        assert_eq!(status, 400, "{body}");
        let (status, body) = curl(port, "/attestation?nonce=c0ffee", &[]);
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("no NSM"), "{body}");
    }
}
