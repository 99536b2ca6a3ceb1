#!/bin/sh
# make-image.sh BUSYBOX DIR: builds an OCI image layout at DIR (tag "app") whose application is
# Debian busybox-static's httpd on 127.0.0.1:8080, a plain HTTP server that knows nothing of
# TLS, vsock or attestation, with Debian's umoci and no daemon:
#
#   /bin/busybox (BUSYBOX), /bin/sh -> busybox, /www/index.html, /www/file.txt (about 100 KB),
#   /www/cgi-bin/whoami (a CGI script printing the X-Forwarded-For and Forwarded it was given);
#   Cmd ["/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www"], Env PATH=/bin.
#
# examples/front/enclave.toml puts our TLS front before it; `cargo xtask test` builds, boots and
# attests it, fetches the file byte for byte and checks the client address reached the CGI.
set -eu
if [ $# -ne 2 ]; then
    echo "usage: $0 BUSYBOX DIR" >&2
    exit 2
fi
busybox=$1
out=$2
command -v umoci >/dev/null || { echo "make-image.sh: umoci is missing (apt-get install umoci)" >&2; exit 1; }
[ -f "$busybox" ] || { echo "make-image.sh: $busybox: no such file (apt-get install busybox-static)" >&2; exit 1; }
[ ! -e "$out" ] || { echo "make-image.sh: $out exists; remove it first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

umoci init --layout "$out"
umoci new --image "$out:app"
umoci unpack --rootless --image "$out:app" "$work/one"
root=$work/one/rootfs
mkdir -p "$root/bin" "$root/www/cgi-bin"
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
printf 'hello from busybox httpd behind the enclave front\n' >"$root/www/index.html"
seq 1 20000 >"$root/www/file.txt"
cat >"$root/www/cgi-bin/whoami" <<'CGI'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
echo "x-forwarded-for=$HTTP_X_FORWARDED_FOR"
echo "forwarded=$HTTP_FORWARDED"
CGI
chmod 0755 "$root/www/cgi-bin/whoami"
umoci repack --image "$out:app" "$work/one"
umoci config --image "$out:app" \
    --config.cmd /bin/busybox --config.cmd httpd --config.cmd -f \
    --config.cmd -p --config.cmd 127.0.0.1:8080 --config.cmd -h --config.cmd /www \
    --config.env PATH=/bin
umoci gc --layout "$out"
