//! Disk sizes: parsing the sizes users type (`512M`, `2G`, `1GiB`, plain bytes) and printing them
//! back in the largest exact binary unit.
//!
//! All suffixes are binary (powers of 1024), as disk-image tools conventionally use them:
//! `M`, `MB`, `MiB` all mean 2^20 bytes. Lower-case suffixes are accepted.

use crate::Error;

/// One kibibyte, 2^10 bytes.
pub const KIB: u64 = 1 << 10;
/// One mebibyte, 2^20 bytes.
pub const MIB: u64 = 1 << 20;
/// One gibibyte, 2^30 bytes.
pub const GIB: u64 = 1 << 30;
/// One tebibyte, 2^40 bytes.
pub const TIB: u64 = 1 << 40;

/// Parses a size such as `1073741824`, `512K`, `512M`, `2G`, `1GiB` or `1T`.
///
/// ```
/// use mkimage_core::size::{parse_size, GIB, MIB};
/// assert_eq!(parse_size("2G").unwrap(), 2 * GIB);
/// assert_eq!(parse_size("512MiB").unwrap(), 512 * MIB);
/// assert_eq!(parse_size("4096").unwrap(), 4096);
/// assert!(parse_size("1.5G").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<u64, Error> {
    let invalid = |reason: &'static str| Error::InvalidSize { text: text.to_owned(), reason };
    let trimmed = text.trim();
    let digits_end = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, suffix) = trimmed.split_at(digits_end);
    if number.is_empty() {
        return Err(invalid("expected a whole number, optionally followed by K, M, G or T"));
    }
    let number: u64 = number.parse().map_err(|_| invalid("number is too large"))?;
    let unit = match suffix.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => KIB,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => GIB,
        "t" | "tb" | "tib" => TIB,
        _ => return Err(invalid("unknown unit; use K, M, G or T (powers of 1024)")),
    };
    number.checked_mul(unit).ok_or_else(|| invalid("size is too large"))
}

/// Formats a byte count in the largest binary unit that represents it exactly
/// (`1 GiB`, `1536 MiB`, `1000 bytes`).
///
/// ```
/// use mkimage_core::size::format_size;
/// assert_eq!(format_size(1 << 30), "1 GiB");
/// assert_eq!(format_size(3 << 29), "1536 MiB");
/// assert_eq!(format_size(1000), "1000 bytes");
/// ```
pub fn format_size(bytes: u64) -> String {
    for (unit, name) in [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        let cases = [
            ("0", 0),
            ("512", 512),
            ("1073741824", GIB),
            ("1k", KIB),
            ("512K", 512 * KIB),
            ("512M", 512 * MIB),
            ("512MB", 512 * MIB),
            ("512MiB", 512 * MIB),
            ("512mib", 512 * MIB),
            ("2G", 2 * GIB),
            ("1GiB", GIB),
            ("1 GiB", GIB),
            (" 10G ", 10 * GIB),
            ("2T", 2 * TIB),
            ("7b", 7),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn rejects_malformed_sizes() {
        for text in ["", "G", "-1", "1.5G", "1X", "1 G B", "0x100", "99999999999999999999", "20000000T"] {
            let err = parse_size(text).unwrap_err();
            assert!(matches!(err, Error::InvalidSize { .. }), "{text}: {err}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for size in [1, 511, KIB, 3 * KIB, MIB, 1536 * MIB, GIB, 10 * GIB, 2 * TIB] {
            let text = format_size(size).replace(' ', "").replace("bytes", "");
            assert_eq!(parse_size(&text).unwrap(), size);
        }
    }
}
