//! Byte-level building blocks of every on-disk layout this crate writes and reads: the sector
//! size, and [`Le`], a little-endian field at a fixed offset. Each layout (boot record, FAT boot
//! sector, FSInfo, MBR, GPT) names its fields once as `Le` constants, and its writer and its
//! reader both go through them.
//!
//! A leaf module: it imports nothing from the rest of the crate, so every other module can use
//! it without creating an import cycle.

use std::marker::PhantomData;

/// Bytes per logical sector. Everything this tool writes uses 512-byte logical sectors (disks
/// with 4096-byte *physical* sectors still present 512-byte logical ones to the firmware).
pub const SECTOR_SIZE: u64 = 512;

/// [`SECTOR_SIZE`] as a `usize`, for buffer lengths.
pub const SECTOR_BYTES: usize = SECTOR_SIZE as usize;

/// An unsigned integer that can be stored little-endian.
pub trait LeInt: Copy {
    /// Bytes it occupies.
    const WIDTH: usize;
    /// Decodes `WIDTH` little-endian bytes.
    fn from_le(bytes: &[u8]) -> Self;
    /// Encodes into `WIDTH` little-endian bytes.
    fn to_le(self, out: &mut [u8]);
}

macro_rules! le_int {
    ($($t:ty),*) => {$(
        impl LeInt for $t {
            const WIDTH: usize = std::mem::size_of::<$t>();
            fn from_le(bytes: &[u8]) -> Self {
                let mut raw = [0u8; std::mem::size_of::<$t>()];
                raw.copy_from_slice(bytes);
                <$t>::from_le_bytes(raw)
            }
            fn to_le(self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}

le_int!(u8, u16, u32, u64);

/// A little-endian field of type `T` at a fixed byte offset within a structure.
///
/// ```
/// use mkimage_core::bytes::Le;
/// const SIZE: Le<u32> = Le::at(4);
/// let mut header = [0u8; 8];
/// SIZE.put(&mut header, 0x1234);
/// assert_eq!(header, [0, 0, 0, 0, 0x34, 0x12, 0, 0]);
/// assert_eq!(SIZE.get(&header), Some(0x1234));
/// assert_eq!(SIZE.get(&header[..6]), None);
/// ```
pub struct Le<T>(usize, PhantomData<T>);

impl<T> Clone for Le<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Le<T> {}

impl<T> std::fmt::Debug for Le<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Le@{:#x}", self.0)
    }
}

impl<T: LeInt> Le<T> {
    /// The field at byte `offset`.
    pub const fn at(offset: usize) -> Self {
        Le(offset, PhantomData)
    }

    /// Its byte offset.
    pub const fn offset(self) -> usize {
        self.0
    }

    /// One past its last byte.
    pub const fn end(self) -> usize {
        self.0 + T::WIDTH
    }

    /// The same field in the structure that starts `base` bytes into a larger buffer.
    pub const fn within(self, base: usize) -> Self {
        Le(base + self.0, PhantomData)
    }

    /// Reads the field, or `None` when `bytes` is too short to hold it.
    pub fn get(self, bytes: &[u8]) -> Option<T> {
        bytes.get(self.0..self.0.checked_add(T::WIDTH)?).map(T::from_le)
    }

    /// Writes the field.
    ///
    /// # Panics
    /// If `bytes` is too short to hold it: writers size their buffers from the layout, so this
    /// is a bug in the writer, never a property of the input.
    pub fn put(self, bytes: &mut [u8], value: T) {
        value.to_le(&mut bytes[self.0..self.end()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_refuse_short_buffers() {
        let mut buf = [0u8; 16];
        Le::<u64>::at(8).put(&mut buf, 0x0102_0304_0506_0708);
        assert_eq!(buf[8..], [8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(Le::<u16>::at(8).get(&buf), Some(0x0708));
        assert_eq!(Le::<u8>::at(15).get(&buf), Some(1));
        assert_eq!(Le::<u32>::at(13).get(&buf), None);
        assert_eq!(Le::<u32>::at(usize::MAX - 1).get(&buf), None);
        assert_eq!(Le::<u16>::at(2).within(6).offset(), 8);
    }
}
