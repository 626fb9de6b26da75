//! Identifiers an image carries (MBR disk signature, GPT disk and partition GUIDs, FAT volume id),
//! derived from the build inputs so that the same inputs always give the same identifiers.
//!
//! Derivation: a 32-byte *identity* is SHA-256 over a domain-separation tag followed by
//! length-prefixed fields. Without a seed the fields are the SHA-256 of the kernel bytes, the
//! kernel's command line, the partition-table kind, the firmware choice and the disk size; with
//! a seed they are the seed alone, so a caller can keep a disk's identifiers stable across
//! kernel versions (or give two images of one kernel different ones). Each identifier is then SHA-256(identity ‖ label)
//! truncated to its width, with a distinct label per identifier. GUIDs are laid out as RFC 9562
//! version 8 ("custom") UUIDs: version nibble 8, variant bits `10`.

use sha2::{Digest, Sha256};

/// Domain-separation tag of identity derivation; bump it if the derivation ever changes.
const IDENTITY_TAG: &[u8] = b"unikernel-mkimage identity v2";
/// Label of the MBR disk signature.
const LABEL_MBR_SIGNATURE: &str = "mbr disk signature";
/// Label of the FAT volume id.
const LABEL_FAT_VOLUME_ID: &str = "fat volume id";
/// Label of the GPT disk GUID.
const LABEL_GPT_DISK: &str = "gpt disk";
/// Label of the BIOS boot partition's unique GUID.
const LABEL_GPT_BIOS_BOOT: &str = "gpt partition bios-boot";
/// Label of the EFI system partition's unique GUID.
const LABEL_GPT_ESP: &str = "gpt partition esp";

/// The root from which every identifier of one image is derived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity([u8; 32]);

/// A GPT GUID in its canonical (RFC 9562, big-endian field) byte order.
pub type Guid = [u8; 16];

/// Every identifier an image carries, derived from its [`Identity`]. The GUIDs are written
/// only on GPT disks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identifiers {
    /// The MBR disk signature (also in the protective MBR of a GPT disk). Never zero.
    pub mbr_disk_signature: u32,
    /// The FAT volume serial number.
    pub fat_volume_id: u32,
    /// The GPT disk GUID.
    pub gpt_disk: Guid,
    /// The unique GUID of the BIOS boot partition.
    pub gpt_bios_boot: Guid,
    /// The unique GUID of the EFI system partition.
    pub gpt_esp: Guid,
}

impl Identity {
    /// Derives the identity of an image from its content (no seed given).
    pub fn from_content(kernel_sha256: &[u8; 32], cmdline: &str, table: &str, firmware: &str, disk_size: u64) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(IDENTITY_TAG);
        let size = disk_size.to_le_bytes();
        for field in [&b"content"[..], kernel_sha256, cmdline.as_bytes(), table.as_bytes(), firmware.as_bytes(), &size]
        {
            hasher.update((field.len() as u64).to_le_bytes());
            hasher.update(field);
        }
        Identity(hasher.finalize().into())
    }

    /// Derives the identity of an image from a caller-supplied seed.
    pub fn from_seed(seed: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(IDENTITY_TAG);
        for field in [&b"seed"[..], seed] {
            hasher.update((field.len() as u64).to_le_bytes());
            hasher.update(field);
        }
        Identity(hasher.finalize().into())
    }

    fn derive(&self, label: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.0);
        hasher.update(label.as_bytes());
        hasher.finalize().into()
    }

    fn derive_u32(&self, label: &str) -> u32 {
        let bytes = self.derive(label);
        u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }

    /// The identifiers of the image. The MBR disk signature is never zero, since some tools
    /// treat zero as "no signature".
    pub fn identifiers(&self) -> Identifiers {
        Identifiers {
            mbr_disk_signature: self.derive_u32(LABEL_MBR_SIGNATURE).max(1),
            fat_volume_id: self.derive_u32(LABEL_FAT_VOLUME_ID),
            gpt_disk: self.guid(LABEL_GPT_DISK),
            gpt_bios_boot: self.guid(LABEL_GPT_BIOS_BOOT),
            gpt_esp: self.guid(LABEL_GPT_ESP),
        }
    }

    /// A version 8 GUID for the given purpose.
    fn guid(&self, label: &str) -> Guid {
        let bytes = self.derive(label);
        let mut guid = [0u8; 16];
        guid.copy_from_slice(&bytes[..16]);
        guid[6] = (guid[6] & 0x0f) | 0x80; // version 8: custom
        guid[8] = (guid[8] & 0x3f) | 0x80; // variant 10: RFC 9562
        guid
    }
}

/// SHA-256 of a byte string.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Formats a GUID the canonical way (`8-4-4-4-12` lower-case hex).
pub fn format_guid(guid: &Guid) -> String {
    let hex: String = guid.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(kernel: &[u8], cmdline: &str, table: &str, size: u64) -> Identity {
        Identity::from_content(&sha256(kernel), cmdline, table, "hybrid", size)
    }

    #[test]
    fn same_inputs_same_identifiers() {
        let a = content(b"kernel", "k a b", "mbr", 1 << 30);
        let b = content(b"kernel", "k a b", "mbr", 1 << 30);
        assert_eq!(a, b);
        assert_eq!(a.identifiers(), b.identifiers());
    }

    #[test]
    fn every_input_changes_the_identity() {
        let base = content(b"kernel", "k a b", "mbr", 1 << 30);
        assert_ne!(base, content(b"kernel2", "k a b", "mbr", 1 << 30));
        assert_ne!(base, content(b"kernel", "k a  b", "mbr", 1 << 30));
        assert_ne!(base, content(b"kernel", "k a b", "gpt", 1 << 30));
        assert_ne!(base, content(b"kernel", "k a b", "mbr", 2 << 30));
        assert_ne!(base, Identity::from_content(&sha256(b"kernel"), "k a b", "mbr", "bios", 1 << 30));
        assert_ne!(base, Identity::from_seed(b"kernel"));
    }

    #[test]
    fn seed_alone_decides_seeded_identity() {
        assert_eq!(Identity::from_seed(b"x"), Identity::from_seed(b"x"));
        assert_ne!(Identity::from_seed(b"x"), Identity::from_seed(b"y"));
        // Length prefixes keep field boundaries unambiguous.
        assert_ne!(Identity::from_seed(b""), Identity::from_seed(b"\0"));
    }

    #[test]
    fn labels_give_distinct_identifiers() {
        let id = Identity::from_seed(b"seed");
        let ids = id.identifiers();
        assert_ne!(ids.gpt_disk, ids.gpt_bios_boot);
        assert_ne!(ids.gpt_bios_boot, ids.gpt_esp);
        assert_ne!(ids.mbr_disk_signature, ids.fat_volume_id);
    }

    #[test]
    fn guids_are_version_8_rfc_variant() {
        for seed in 0u32..256 {
            let guid = Identity::from_seed(&seed.to_le_bytes()).identifiers().gpt_disk;
            assert_eq!(guid[6] >> 4, 8);
            assert_eq!(guid[8] >> 6, 0b10);
            assert_eq!(format_guid(&guid).len(), 36);
        }
        let sig = Identity::from_seed(b"").identifiers().mbr_disk_signature;
        assert_ne!(sig, 0);
    }
}
