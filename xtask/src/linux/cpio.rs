//! A writer for uncompressed `newc` cpio archives, the format the Linux kernel unpacks as an
//! initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
//!
//! Each entry is a 110-byte ASCII header (`070701` and thirteen 8-digit hex fields), the
//! NUL-terminated name padded so that header + name is a multiple of 4, then the data padded to
//! 4. The archive ends with an entry named `TRAILER!!!`.

/// File type bits of `st_mode`.
pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFREG: u32 = 0o100_000;
pub const S_IFLNK: u32 = 0o120_000;
pub const S_IFCHR: u32 = 0o020_000;

pub const MAGIC: &[u8; 6] = b"070701";
pub const HEADER_LEN: usize = 110;
pub const TRAILER: &str = "TRAILER!!!";

/// An archive being built in memory. Names are stored without a leading `/`, as the kernel's
/// own `gen_init_cpio` does; entries are owned by root and dated 0, so that archives are
/// reproducible.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
    next_ino: u32,
}

struct Entry<'a> {
    name: &'a str,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    data: &'a [u8],
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: Vec::new(), next_ino: 1 }
    }

    /// A directory (`mode` is the permission bits, e.g. `0o755`).
    pub fn dir(&mut self, path: &str, mode: u32) {
        self.entry(Entry { name: path, mode: S_IFDIR | mode, nlink: 2, rdev: (0, 0), data: &[] });
    }

    /// A regular file.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.entry(Entry { name: path, mode: S_IFREG | mode, nlink: 1, rdev: (0, 0), data });
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.entry(Entry {
            name: path,
            mode: S_IFLNK | 0o777,
            nlink: 1,
            rdev: (0, 0),
            data: target.as_bytes(),
        });
    }

    /// A character device node.
    pub fn char_dev(&mut self, path: &str, mode: u32, major: u32, minor: u32) {
        self.entry(Entry { name: path, mode: S_IFCHR | mode, nlink: 1, rdev: (major, minor), data: &[] });
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        // The trailer has inode 0 and nlink 1, like GNU cpio's and the kernel's gen_init_cpio.
        self.next_ino = 0;
        self.entry(Entry { name: TRAILER, mode: 0, nlink: 1, rdev: (0, 0), data: &[] });
        self.buf
    }

    fn entry(&mut self, e: Entry<'_>) {
        let name = e.name.trim_start_matches('/');
        let name = if name.is_empty() { "." } else { name };
        let ino = self.next_ino;
        self.next_ino += 1;
        let size = u32::try_from(e.data.len()).expect("cpio entries are smaller than 4 GiB");
        let namesize = u32::try_from(name.len() + 1).expect("short names");
        let fields = [ino, e.mode, 0, 0, e.nlink, 0, size, 0, 0, e.rdev.0, e.rdev.1, namesize, 0];
        let start = self.buf.len();
        self.buf.extend_from_slice(MAGIC);
        for field in fields {
            self.buf.extend_from_slice(format!("{field:08X}").as_bytes());
        }
        debug_assert_eq!(self.buf.len() - start, HEADER_LEN);
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(e.data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
}

#[cfg(test)]
pub mod parse {
    //! Reads an archive back, for the tests.

    use super::{HEADER_LEN, MAGIC, TRAILER};

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Parsed {
        pub name: String,
        pub ino: u32,
        pub mode: u32,
        pub uid: u32,
        pub gid: u32,
        pub nlink: u32,
        pub mtime: u32,
        pub rdev: (u32, u32),
        pub data: Vec<u8>,
        /// Offset of the header in the archive.
        pub offset: usize,
    }

    fn align4(n: usize) -> usize {
        (n + 3) & !3
    }

    /// Every entry up to and including the trailer; panics on anything malformed, and when
    /// bytes other than zero padding follow the trailer.
    pub fn entries(archive: &[u8]) -> Vec<Parsed> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            assert_eq!(pos % 4, 0, "headers start 4-aligned");
            let header = &archive[pos..pos + HEADER_LEN];
            assert_eq!(&header[..6], MAGIC, "magic at {pos}");
            let field = |i: usize| {
                let text = std::str::from_utf8(&header[6 + 8 * i..14 + 8 * i]).unwrap();
                assert!(text.bytes().all(|b| b.is_ascii_hexdigit()), "hex field {text:?}");
                u32::from_str_radix(text, 16).unwrap()
            };
            let (filesize, namesize) = (field(6) as usize, field(11) as usize);
            assert_eq!(field(12), 0, "check field");
            let name_start = pos + HEADER_LEN;
            let name_bytes = &archive[name_start..name_start + namesize];
            assert_eq!(name_bytes.last(), Some(&0), "name is NUL-terminated");
            let name = String::from_utf8(name_bytes[..namesize - 1].to_vec()).unwrap();
            assert!(!name.contains('\0'));
            let data_start = align4(name_start + namesize);
            assert!(archive[name_start + namesize..data_start].iter().all(|&b| b == 0), "name padding");
            let data = archive[data_start..data_start + filesize].to_vec();
            let next = align4(data_start + filesize);
            assert!(archive[data_start + filesize..next].iter().all(|&b| b == 0), "data padding");
            let done = name == TRAILER;
            out.push(Parsed {
                name,
                ino: field(0),
                mode: field(1),
                uid: field(2),
                gid: field(3),
                nlink: field(4),
                mtime: field(5),
                rdev: (field(9), field(10)),
                data,
                offset: pos,
            });
            pos = next;
            if done {
                assert!(archive[pos..].iter().all(|&b| b == 0), "nothing after the trailer");
                return out;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse::entries;
    use super::*;

    #[test]
    fn round_trip() {
        let mut w = Writer::new();
        w.dir("/bin", 0o755);
        w.file("/bin/busybox", 0o755, b"\x7fELF12345");
        w.symlink("/bin/sh", "busybox");
        w.char_dev("/dev/console", 0o600, 5, 1);
        w.file("/init", 0o755, b"#!/bin/busybox sh\n");
        w.file("/empty", 0o644, b"");
        let archive = w.finish();
        assert_eq!(archive.len() % 4, 0);
        let e = entries(&archive);
        let names: Vec<&str> = e.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["bin", "bin/busybox", "bin/sh", "dev/console", "init", "empty", TRAILER]);

        assert_eq!(e[0].mode, S_IFDIR | 0o755);
        assert_eq!(e[0].nlink, 2);
        assert_eq!(e[1].mode, S_IFREG | 0o755);
        assert_eq!(e[1].data, b"\x7fELF12345");
        assert_eq!(e[2].mode, S_IFLNK | 0o777);
        assert_eq!(e[2].data, b"busybox");
        assert_eq!(e[3].mode, S_IFCHR | 0o600);
        assert_eq!(e[3].rdev, (5, 1));
        assert!(e[3].data.is_empty());
        assert!(e[5].data.is_empty());
        for p in &e {
            assert_eq!((p.uid, p.gid, p.mtime), (0, 0, 0));
        }
        // Inodes are distinct for every real entry.
        let mut inos: Vec<u32> = e[..e.len() - 1].iter().map(|p| p.ino).collect();
        inos.sort_unstable();
        inos.dedup();
        assert_eq!(inos.len(), e.len() - 1);
        assert!(inos.iter().all(|&i| i != 0));
        let trailer = e.last().unwrap();
        assert_eq!((trailer.mode, trailer.nlink, trailer.data.len()), (0, 1, 0));
    }

    #[test]
    fn exact_bytes_of_one_entry() {
        let mut w = Writer::new();
        w.file("a", 0o644, b"xyz");
        let archive = w.finish();
        let expected_header = concat!(
            "070701", "00000001", "000081A4", "00000000", "00000000", "00000001", "00000000", "00000003",
            "00000000", "00000000", "00000000", "00000000", "00000002", "00000000"
        );
        assert_eq!(&archive[..HEADER_LEN], expected_header.as_bytes());
        // 110 + "a\0" = 112, already aligned: the data follows at once and is padded to 116.
        assert_eq!(&archive[110..112], b"a\0");
        assert_eq!(&archive[112..116], b"xyz\0");
        assert_eq!(&archive[116..122], MAGIC);
    }

    #[test]
    fn name_padding_for_every_length() {
        // Header + name (with NUL) must be padded to 4 whatever the name length.
        for len in 1..=9 {
            let name = "n".repeat(len);
            let mut w = Writer::new();
            w.file(&name, 0o644, b"data!");
            let archive = w.finish();
            let e = entries(&archive);
            assert_eq!(e[0].name, name);
            assert_eq!(e[0].data, b"data!");
            assert_eq!(e[1].offset % 4, 0);
            assert_eq!(e[1].name, TRAILER);
        }
    }

    #[test]
    fn empty_archive_is_a_trailer() {
        let archive = Writer::new().finish();
        let e = entries(&archive);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].name, TRAILER);
        // 110 + 11 = 121 → padded to 124.
        assert_eq!(archive.len(), 124);
    }
}
