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

/// Parses a size such as `1073741824`, `512K`, `512M`, `2G`, `1GiB`, `1.5G` or `1T`. A fraction
/// is accepted when it makes a whole number of bytes (`1.5K` is 1536 bytes; `1.3K` is refused).
///
/// ```
/// use mkimage_core::size::{parse_size, GIB, MIB};
/// assert_eq!(parse_size("2G").unwrap(), 2 * GIB);
/// assert_eq!(parse_size("512MiB").unwrap(), 512 * MIB);
/// assert_eq!(parse_size("1.5G").unwrap(), 3 * GIB / 2);
/// assert_eq!(parse_size("4096").unwrap(), 4096);
/// assert!(parse_size("1.3K").is_err());
/// ```
///
/// # Errors
/// [`Error::InvalidSize`], saying why, for anything else.
pub fn parse_size(text: &str) -> Result<u64, Error> {
    let invalid = |reason: &'static str| Error::InvalidSize { text: text.to_owned(), reason };
    let trimmed = text.trim();
    let number_end = trimmed.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(trimmed.len());
    let (number, suffix) = trimmed.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
        return Err(invalid("expected a number, optionally with a fraction, then K, M, G or T"));
    }
    let unit = match suffix.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => KIB,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => GIB,
        "t" | "tb" | "tib" => TIB,
        _ => return Err(invalid("unknown unit; use K, M, G or T (powers of 1024)")),
    };
    let too_large = || invalid("size is too large");
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    // Sizes are at most 2^64; more fraction digits than that cannot change a whole byte count.
    if fraction.len() > 24 {
        return Err(invalid("too many digits after the decimal point"));
    }
    let scale = 10u128.pow(fraction.len() as u32);
    let fraction: u128 = if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| too_large())? };
    let scaled = whole.checked_mul(scale).and_then(|w| w.checked_add(fraction)).ok_or_else(too_large)?;
    let bytes = scaled.checked_mul(u128::from(unit)).ok_or_else(too_large)?;
    if bytes % scale != 0 {
        return Err(invalid("the fraction does not make a whole number of bytes"));
    }
    u64::try_from(bytes / scale).map_err(|_| too_large())
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
            ("1.5G", 3 * GIB / 2),
            ("0.5K", 512),
            ("1.25M", 5 * MIB / 4),
            ("2.0G", 2 * GIB),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn rejects_malformed_sizes() {
        for text in [
            "",
            "G",
            "-1",
            "1.3K",
            "1.5",
            "1.",
            ".5G",
            "1.2.3G",
            "1X",
            "1 G B",
            "0x100",
            "99999999999999999999",
            "20000000T",
        ] {
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
