//! `cargo xtask bench boot`: boot time of our image against a reference image of the same
//! kernel, command line and server whose ramdisk is the usual "distro userland" way, Debian's
//! busybox-static and a shell-script /init that mounts and execs the server. Both are booted
//! alternately in the emulator; results are printed with ratios and written to
//! `target/bench/boot.json`. A benchmark, not a test: nothing here asserts a speed.

use crate::cmd::{cache_dir, err, human, output, run, Context, Result};
use crate::eif::{self, Image};
use crate::enclave::{self, Options};
use crate::setup;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const REFERENCE_INIT: &str = "#!/bin/sh
# Reference init for the boot benchmark: a busybox shell script, the usual distro way.
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t tmpfs tmpfs /tmp
exec /server
";

/// Reads one figure out of a sample.
type Metric = fn(&Sample) -> f64;

/// One boot's figures, in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Sample {
    kernel_to_init: f64,
    init_to_listening: f64,
    start_to_first_response: f64,
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Debian's busybox-static, downloaded once into the cache; returns the binary and version.
fn busybox() -> Result<(PathBuf, String)> {
    let dir = cache_dir().join("bench/busybox-static");
    let bin = dir.join("bin/busybox");
    let version_file = dir.join("version");
    if !bin.is_file() {
        fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        let download = || {
            run(Command::new("apt-get")
                .args(["download", "-q", "busybox-static"])
                .current_dir(&dir))
        };
        if download().is_err() {
            setup::apt_update()?;
            download()?;
        }
        let deb = fs::read_dir(&dir)
            .ctx(|| dir.display().to_string())?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .ok_or_else(|| {
                crate::cmd::Error("apt-get download busybox-static gave no .deb".into())
            })?;
        let version = output(
            Command::new("dpkg-deb")
                .args(["-f"])
                .arg(&deb)
                .arg("Version"),
        )?;
        let unpacked = dir.join("deb");
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
        fs::create_dir_all(dir.join("bin")).ctx(|| "creating bin".into())?;
        fs::copy(unpacked.join("bin/busybox"), &bin).ctx(|| "copying busybox".into())?;
        fs::write(&version_file, version.trim()).ctx(|| "writing version".into())?;
        let _ = fs::remove_dir_all(&unpacked);
        let _ = fs::remove_file(&deb);
    }
    let version = fs::read_to_string(&version_file).unwrap_or_default();
    Ok((bin, version.trim().to_owned()))
}

/// The reference EIF: same kernel and cmdline, one ramdisk with busybox, the script and the
/// same server binary.
fn reference(image: &Image, out: &Path) -> Result<(PathBuf, String)> {
    let (busybox, version) = busybox()?;
    fs::create_dir_all(out).ctx(|| format!("creating {}", out.display()))?;
    fs::write(out.join("init.sh"), REFERENCE_INIT).ctx(|| "writing init.sh".into())?;
    let list = format!(
        "dir /bin 0755\nfile /bin/busybox {} 0755\nslink /bin/sh busybox 0777\n\
         dir /dev 0755\nnod /dev/console 0600 c 5 1\ndir /proc 0555\ndir /sys 0555\n\
         dir /tmp 01777\nfile /init {} 0755\nfile /server {} 0755\n",
        busybox.display(),
        out.join("init.sh").display(),
        image.binaries[1].display()
    );
    fs::write(out.join("reference.list"), list).ctx(|| "writing reference.list".into())?;
    eif::pack_cpio(
        &image.tool,
        &out.join("reference.list"),
        &out.join("reference.cpio"),
        &[],
    )?;
    let root = crate::cmd::project_root();
    let eif = out.join("reference.eif");
    eif::pack_eif(
        &image.tool,
        &image.kernel,
        &eif::cmdline(&root)?,
        &[out.join("reference.cpio")],
        &eif,
        &[],
    )?;
    Ok((eif, version))
}

/// The guest timestamp of a kernel console line `[    1.087322] …`, in ms.
fn guest_ms(line: &str) -> Option<f64> {
    let inner = line.trim_start().strip_prefix('[')?.split(']').next()?;
    inner.trim().parse::<f64>().ok().map(|s| s * 1000.0)
}

fn boot_once(eif: &Path, dir: &Path) -> Result<Sample> {
    let mut opts = Options::new(enclave::Image::Eif(eif.to_owned()));
    opts.dir = dir.to_owned();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").ctx(|| "free port".into())?;
    opts.port = listener.local_addr().ctx(|| "free port".into())?.port();
    drop(listener);
    let result = (|| -> Result<Sample> {
        enclave::start_detached(&opts, Duration::from_secs(120))?;
        // First HTTP response, as a client sees it.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let code = output(
                Command::new("curl")
                    .args([
                        "-sk",
                        "--http1.1",
                        "--max-time",
                        "5",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                    ])
                    .arg(format!("https://127.0.0.1:{}/health", opts.port)),
            )
            .unwrap_or_default();
            if code == "200" {
                break;
            }
            if Instant::now() > deadline {
                return err("no HTTP 200 from /health within 30 s of the server listening");
            }
        }
        let answered = now_ms();
        let started: u128 = fs::read_to_string(dir.join("started"))
            .ctx(|| "reading started".into())?
            .trim()
            .parse()
            .map_err(|_| crate::cmd::Error("bad started file".into()))?;
        let ready_s: f64 = fs::read_to_string(dir.join("ready"))
            .ctx(|| "reading ready".into())?
            .trim()
            .parse()
            .map_err(|_| crate::cmd::Error("bad ready file".into()))?;
        let timing =
            fs::read_to_string(dir.join("console.timing")).ctx(|| "console.timing".into())?;
        let init_line = timing
            .lines()
            .find(|l| l.contains("Run /init as init process"))
            .ok_or_else(|| crate::cmd::Error("no `Run /init` line on the console".into()))?;
        let (host_ms, line) = init_line.split_once('\t').unwrap_or(("", init_line));
        let host_init: f64 = host_ms.parse().unwrap_or(f64::NAN);
        // Display arithmetic on small millisecond counts: no precision concern.
        #[allow(clippy::cast_precision_loss)]
        let first = answered.saturating_sub(started) as f64;
        Ok(Sample {
            kernel_to_init: guest_ms(line).unwrap_or(f64::NAN),
            init_to_listening: ready_s * 1000.0 - host_init,
            start_to_first_response: first,
        })
    })();
    let stopped = enclave::stop(dir);
    let sample = result?;
    stopped?;
    Ok(sample)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `cargo xtask bench boot [--runs N]`.
pub fn boot(runs: usize) -> Result {
    let image = eif::build(&eif::Options::default())?;
    let _ = enclave::tools()?;
    let out = eif::target_dir(&crate::cmd::project_root()).join("bench");
    let (reference_eif, busybox_version) = reference(&image, &out.join("reference"))?;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for i in 0..runs {
        // Alternate, so drift in the machine's speed hits both alike.
        for (name, eif, samples) in [
            ("ours", &image.eif, &mut ours),
            ("reference", &reference_eif, &mut theirs),
        ] {
            let s = boot_once(eif, &out.join("boot-run"))?;
            println!(
                "run {}/{runs} {name:9}: kernel→/init {:6.0} ms, /init→listening {:6.0} ms, QEMU start→first response {:6.0} ms",
                i + 1,
                s.kernel_to_init,
                s.init_to_listening,
                s.start_to_first_response
            );
            samples.push(s);
        }
    }
    let pick = |v: &[Sample], f: Metric| median(v.iter().map(f).collect());
    let rows: [(&str, Metric); 3] = [
        ("kernel start → /init", |s| s.kernel_to_init),
        ("/init → server listening", |s| s.init_to_listening),
        ("QEMU start → first HTTP response", |s| {
            s.start_to_first_response
        }),
    ];
    let size = |p: &Path| fs::metadata(p).map_or(0, |m| m.len());
    println!("\nmedians of {runs} boots each (TCG, 256M, 2 vCPUs); reference = busybox-static {busybox_version} + shell /init");
    println!(
        "{:34} {:>10} {:>12} {:>16}",
        "", "ours", "reference", "reference/ours"
    );
    let mut json_rows = Vec::new();
    for (name, f) in rows {
        let (a, b) = (pick(&ours, f), pick(&theirs, f));
        println!("{name:34} {a:8.0}ms {b:10.0}ms {:15.2}x", b / a);
        json_rows.push(format!(
            "    {{\"metric\": \"{name}\", \"ours_ms\": {a:.1}, \"reference_ms\": {b:.1}, \"ratio_reference_over_ours\": {:.3}}}",
            b / a
        ));
    }
    let (a, b) = (size(&image.eif), size(&reference_eif));
    println!("{:34} {:>10} {:>12}", "image size", human(a), human(b));
    let json = format!(
        "{{\n  \"benchmark\": \"boot\",\n  \"runs\": {runs},\n  \"reference\": \"busybox-static {busybox_version} + shell-script /init, same kernel, cmdline and server\",\n  \"ours_eif_bytes\": {a},\n  \"reference_eif_bytes\": {b},\n  \"results\": [\n{}\n  ]\n}}\n",
        json_rows.join(",\n")
    );
    fs::create_dir_all(&out).ctx(|| "creating target/bench".into())?;
    fs::write(out.join("boot.json"), json).ctx(|| "writing boot.json".into())?;
    println!("results written to {}", out.join("boot.json").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_timestamps_and_medians() {
        assert_eq!(
            guest_ms("[    1.087322] Run /init as init process"),
            Some(1087.322)
        );
        assert_eq!(guest_ms("no stamp"), None);
        assert!((median(vec![3.0, 1.0, 2.0]) - 2.0).abs() < 1e-9);
        assert!((median(vec![4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-9);
    }
}
