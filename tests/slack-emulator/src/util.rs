//! Small self-contained helpers: randomness, Slack-shaped identifiers, `ts` clock, base64,
//! URL-encoded form parsing, and a tiny PNG encoder for avatars.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const ALNUM_UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const ALNUM_MIXED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("OS randomness unavailable");
    buf
}

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        getrandom::fill(&mut buf[..n]).expect("OS randomness unavailable");
        // Modulo bias is irrelevant for test identifiers.
        out.extend(
            buf[..n]
                .iter()
                .map(|b| alphabet[*b as usize % alphabet.len()] as char),
        );
        left -= n;
    }
    out
}

/// A Slack-style object ID: prefix (`U`, `C`, `D`, `B`, `A`, `F`, `T`) then `0` and 8–10 upper
/// alphanumerics, like `U0123ABCDEF`.
pub fn slack_id(prefix: char) -> String {
    format!("{prefix}0{}", random_from(ALNUM_UPPER, 9))
}

/// `Ev0…` event IDs, globally unique like Slack's.
pub fn event_id() -> String {
    format!("Ev0{}", random_from(ALNUM_UPPER, 9))
}

pub fn random_digits(len: usize) -> String {
    random_from(b"0123456789", len)
}

pub fn random_alnum(len: usize) -> String {
    random_from(ALNUM_MIXED, len)
}

pub fn random_hex(len: usize) -> String {
    random_from(b"0123456789abcdef", len)
}

/// Random version-4 UUID in the lowercase hyphenated form Slack uses for `envelope_id`s and
/// `client_msg_id`s.
pub fn uuid_v4() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Hands out `"1700000000.123456"`-style timestamps. They are unique and strictly increasing
/// across the whole workspace (a stronger guarantee than Slack's per-channel one), so message
/// `ts`, `event_ts` and edit timestamps never collide.
#[derive(Debug, Default)]
pub struct TsClock {
    last: Mutex<u64>,
}

impl TsClock {
    pub fn next(&self) -> String {
        let mut last = self.last.lock().unwrap();
        let now = now_micros().max(*last + 1);
        *last = now;
        format_ts(now)
    }

    /// Timestamps for seeded history, so demo messages look like they were written in the past
    /// and still sort before anything the emulator generates later.
    pub fn past(&self, secs_ago: u64) -> String {
        let mut last = self.last.lock().unwrap();
        let wanted = now_micros().saturating_sub(secs_ago * 1_000_000);
        let now = wanted.max(*last + 1);
        *last = now;
        format_ts(now)
    }
}

pub fn format_ts(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// Parses a Slack `ts` into microseconds; `None` when it is not `<digits>.<6 digits>`-ish.
pub fn parse_ts(ts: &str) -> Option<u64> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 6 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let frac_val: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    Some(secs * 1_000_000 + frac_val)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        out.push(B64[(n >> 18) as usize & 63] as char);
        out.push(B64[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            B64[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            B64[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Decodes `application/x-www-form-urlencoded` data (also used for query strings). Invalid
/// percent escapes are kept literally, as lenient servers do.
pub fn parse_form(input: &str) -> Vec<(String, String)> {
    input
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// Encodes an RGB image as a valid PNG using uncompressed (stored) deflate blocks, so avatars
/// are real images a media pipeline can decode without pulling in an image crate.
pub fn encode_png(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
    assert_eq!(rgb.len(), (width * height * 3) as usize);
    let mut raw = Vec::with_capacity(rgb.len() + height as usize);
    for row in rgb.chunks((width * 3) as usize) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65535).collect();
    for (i, block) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(block);
    }
    z.extend_from_slice(&adler32(&raw).to_be_bytes());

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8; 4], data: &[u8]| {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit, truecolour, deflate, no filter, no interlace
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &z);
    chunk(b"IEND", &[]);
    png
}

/// Width and height from a PNG's IHDR, for `original_w`/`original_h` on image files.
pub fn png_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
    Some((w, h))
}

/// A deterministic two-tone avatar derived from a hex colour (Slack's user `color` field),
/// with a diagonal band so it is visibly an image and not a flat fill.
pub fn avatar_png(color_hex: &str, size: u32) -> Vec<u8> {
    let c = u32::from_str_radix(color_hex.trim_start_matches('#'), 16).unwrap_or(0x9f69e7);
    let fg = [(c >> 16) as u8, (c >> 8) as u8, c as u8];
    let bg = [fg[0] / 3 + 170, fg[1] / 3 + 170, fg[2] / 3 + 170];
    let mut rgb = Vec::with_capacity((size * size * 3) as usize);
    for y in 0..size {
        for x in 0..size {
            let band = (x + y) % (size / 2).max(1) < size / 6 + 1;
            rgb.extend_from_slice(if band { &bg } else { &fg });
        }
    }
    encode_png(size, size, &rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_roundtrip() {
        for s in [
            "",
            "a",
            "ab",
            "abc",
            "team:C061FA5PB",
            "next_ts:1512085861000543",
        ] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).unwrap(), s.as_bytes());
        }
        assert_eq!(base64_encode(b"team:C061FA5PB"), "dGVhbTpDMDYxRkE1UEI=");
    }

    #[test]
    fn ts_clock_is_strictly_increasing_and_well_formed() {
        let c = TsClock::default();
        let a = c.next();
        let b = c.next();
        assert!(parse_ts(&b).unwrap() > parse_ts(&a).unwrap());
        let (secs, frac) = a.split_once('.').unwrap();
        assert_eq!(secs.len(), 10);
        assert_eq!(frac.len(), 6);
    }

    #[test]
    fn uuid_shape() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(u.matches('-').count(), 4);
    }

    #[test]
    fn form_decoding() {
        let f = parse_form("a=1&b=hello+world&c=%7B%22x%22%3A1%7D&d");
        assert_eq!(f[1], ("b".into(), "hello world".into()));
        assert_eq!(f[2].1, "{\"x\":1}");
        assert_eq!(f[3], ("d".into(), "".into()));
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn png_is_well_formed() {
        let p = avatar_png("e7392d", 48);
        assert_eq!(png_dimensions(&p), Some((48, 48)));
        assert_eq!(&p[p.len() - 8..p.len() - 4], b"IEND");
    }
}
