//! host-relay's command-line addresses and routes, the hybrid-vsock reply a device sends, the
//! PROXY v2 header the server reads, the egress table, and durations: a value or an error naming the input, never a panic; what parses prints back to
//! a form that parses the same.

#![no_main]

use host_relay::addr::{Addr, Route};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = contract::vsock_uds::parse_reply(data);
    if let Ok(Some((h, n))) = contract::proxy_v2::parse(data) {
        assert!((16..=data.len()).contains(&n));
        if let Some(s) = h.source {
            let again = contract::proxy_v2::header(Some((s, s)));
            assert_eq!(
                contract::proxy_v2::parse(&again).map(|r| r.map(|(h, _)| h)),
                Ok(Some(h))
            );
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Route::parse(text);
    let _ = host_relay::cli::routes_text(text, "fuzz");
    for listen in [true, false] {
        if let Ok(a) = Addr::parse(text, listen) {
            let back = Addr::parse(&a.to_string(), listen).expect("a printed address parses");
            assert_eq!(back, a);
        }
    }
    if let Ok(d) = contract::duration::parse(text) {
        assert_eq!(
            contract::duration::parse(&contract::duration::format(d)),
            Ok(d)
        );
    }
    if let Ok(entries) = contract::egress::parse(text) {
        let again = contract::egress::render(&entries);
        assert_eq!(contract::egress::parse(&again), Ok(entries), "{again}");
    }
    let _ = contract::hex::decode(text);
    let _ = contract::base64::decode(text);
});
