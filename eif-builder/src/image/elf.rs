//! Is an executable static? An ELF reader just deep enough to name a dynamic executable's
//! interpreter (`PT_INTERP`) and libraries (`DT_NEEDED`): bounds-checked reads only, never a
//! panic, whatever the bytes.

/// How an executable is linked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Linking {
    /// The program interpreter (dynamic loader), if any.
    pub interpreter: Option<String>,
    /// The shared libraries it needs, in order.
    pub needed: Vec<String>,
}

impl Linking {
    /// Static: no interpreter and no library (static-pie included).
    pub fn is_static(&self) -> bool {
        self.interpreter.is_none() && self.needed.is_empty()
    }
}

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
/// x86_64, the enclaves' architecture.
const EM_X86_64: u16 = 62;
/// Longest interpreter path or library name taken.
const MAX_NAME: usize = 4096;

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        d.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        d.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        d.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn usize_at(d: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u64_at(d, at)?).ok()
}

/// A NUL-terminated string at `at`.
fn c_string(d: &[u8], at: usize) -> Option<String> {
    let rest = d.get(at..)?;
    let len = rest.iter().take(MAX_NAME).position(|&b| b == 0)?;
    String::from_utf8(rest.get(..len)?.to_vec()).ok()
}

struct Segment {
    kind: u32,
    offset: usize,
    vaddr: u64,
    filesz: usize,
}

/// Reads how `data`, an x86_64 ELF executable, is linked; the error says what is wrong.
pub fn linking(data: &[u8]) -> Result<Linking, String> {
    if data.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err("is not an ELF executable".into());
    }
    if data.get(4) != Some(&2) || data.get(5) != Some(&1) {
        return Err("is not a 64-bit little-endian ELF file".into());
    }
    let truncated = || "is a truncated ELF file".to_string();
    let kind = u16_at(data, 0x10).ok_or_else(truncated)?;
    if kind != 2 && kind != 3 {
        return Err(format!(
            "is an ELF file of type {kind}, not an executable (2) or position-independent executable (3)"
        ));
    }
    let machine = u16_at(data, 0x12).ok_or_else(truncated)?;
    if machine != EM_X86_64 {
        return Err(format!(
            "is built for ELF machine {machine}, not x86_64 ({EM_X86_64})"
        ));
    }
    let phoff = usize_at(data, 0x20).ok_or_else(truncated)?;
    let phentsize = usize::from(u16_at(data, 0x36).ok_or_else(truncated)?);
    let phnum = usize::from(u16_at(data, 0x38).ok_or_else(truncated)?);
    if phentsize < 56 {
        return Err(format!("has program headers of {phentsize} bytes (< 56)"));
    }
    let mut segments = Vec::new();
    for i in 0..phnum {
        let at = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .ok_or_else(truncated)?;
        let seg = (|| {
            Some(Segment {
                kind: u32_at(data, at)?,
                offset: usize_at(data, at + 8)?,
                vaddr: u64_at(data, at + 16)?,
                filesz: usize_at(data, at + 32)?,
            })
        })()
        .ok_or_else(truncated)?;
        segments.push(seg);
    }
    let mut out = Linking::default();
    if let Some(interp) = segments.iter().find(|s| s.kind == PT_INTERP) {
        out.interpreter = Some(
            c_string(data, interp.offset)
                .ok_or_else(|| "has an unreadable PT_INTERP".to_string())?,
        );
    }
    let Some(dynamic) = segments.iter().find(|s| s.kind == PT_DYNAMIC) else {
        return Ok(out);
    };
    let table = dynamic
        .offset
        .checked_add(dynamic.filesz)
        .and_then(|end| data.get(dynamic.offset..end))
        .ok_or_else(|| "has a PT_DYNAMIC segment past the end of the file".to_string())?;
    let mut needed_offsets = Vec::new();
    let mut strtab = None;
    for entry in table.chunks_exact(16) {
        let (Some(tag), Some(value)) = (u64_at(entry, 0), u64_at(entry, 8)) else {
            break;
        };
        match tag {
            DT_NULL => break,
            DT_NEEDED => needed_offsets.push(value),
            DT_STRTAB => strtab = Some(value),
            _ => {}
        }
    }
    if needed_offsets.is_empty() {
        return Ok(out);
    }
    let strtab = strtab.ok_or_else(|| "names libraries but has no DT_STRTAB".to_string())?;
    // DT_STRTAB is an address: find the loaded segment that holds it.
    let base = segments
        .iter()
        .filter(|s| s.kind == PT_LOAD)
        .find_map(|s| {
            let delta = strtab.checked_sub(s.vaddr)?;
            let delta = usize::try_from(delta).ok()?;
            (delta < s.filesz)
                .then(|| s.offset.checked_add(delta))
                .flatten()
        })
        .ok_or_else(|| "has a DT_STRTAB outside its loaded segments".to_string())?;
    for off in needed_offsets {
        let name = usize::try_from(off)
            .ok()
            .and_then(|o| base.checked_add(o))
            .and_then(|at| c_string(data, at))
            .ok_or_else(|| "has an unreadable DT_NEEDED name".to_string())?;
        out.needed.push(name);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal x86_64 ELF: one PT_LOAD covering the file, optional PT_INTERP and PT_DYNAMIC.
    fn elf(interp: Option<&str>, needed: &[&str]) -> Vec<u8> {
        let mut strtab = vec![0u8];
        let mut offsets = Vec::new();
        for n in needed {
            offsets.push(strtab.len() as u64);
            strtab.extend_from_slice(n.as_bytes());
            strtab.push(0);
        }
        let phnum = 1 + usize::from(interp.is_some()) + usize::from(!needed.is_empty());
        let data_start = 64 + 56 * phnum;
        let mut body = Vec::new();
        let interp_off = data_start + body.len();
        if let Some(i) = interp {
            body.extend_from_slice(i.as_bytes());
            body.push(0);
        }
        let strtab_off = data_start + body.len();
        body.extend_from_slice(&strtab);
        let dyn_off = data_start + body.len();
        for o in &offsets {
            body.extend_from_slice(&DT_NEEDED.to_le_bytes());
            body.extend_from_slice(&o.to_le_bytes());
        }
        body.extend_from_slice(&DT_STRTAB.to_le_bytes());
        body.extend_from_slice(&(0x40_0000u64 + strtab_off as u64).to_le_bytes());
        body.extend_from_slice(&[0u8; 16]);
        let dyn_len = body.len() + data_start - dyn_off;
        let total = data_start + body.len();
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[0x10..0x12].copy_from_slice(&3u16.to_le_bytes());
        f[0x12..0x14].copy_from_slice(&EM_X86_64.to_le_bytes());
        f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&u16::try_from(phnum).unwrap().to_le_bytes());
        let mut ph = |kind: u32, off: usize, vaddr: u64, size: usize| {
            let mut p = vec![0u8; 56];
            p[..4].copy_from_slice(&kind.to_le_bytes());
            p[8..16].copy_from_slice(&(off as u64).to_le_bytes());
            p[16..24].copy_from_slice(&vaddr.to_le_bytes());
            p[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            f.extend_from_slice(&p);
        };
        ph(PT_LOAD, 0, 0x40_0000, total);
        if let Some(i) = interp {
            ph(PT_INTERP, interp_off, 0, i.len() + 1);
        }
        if !needed.is_empty() {
            ph(PT_DYNAMIC, dyn_off, 0, dyn_len);
        }
        f.extend_from_slice(&body);
        f
    }

    #[test]
    fn static_and_dynamic_executables() {
        assert!(linking(&elf(None, &[])).unwrap().is_static());
        let d = linking(&elf(
            Some("/lib64/ld-linux-x86-64.so.2"),
            &["libc.so.6", "libm.so.6"],
        ))
        .unwrap();
        assert!(!d.is_static());
        assert_eq!(
            d.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert_eq!(d.needed, ["libc.so.6", "libm.so.6"]);
    }

    #[test]
    fn not_elf_or_not_ours() {
        assert!(linking(b"#!/bin/sh\n").unwrap_err().contains("not an ELF"));
        let mut arm = elf(None, &[]);
        arm[0x12..0x14].copy_from_slice(&183u16.to_le_bytes());
        assert!(linking(&arm).unwrap_err().contains("machine 183"));
        let good = elf(Some("/l"), &["a"]);
        for cut in 0..good.len() {
            let _ = linking(&good[..cut]);
        }
    }
}
