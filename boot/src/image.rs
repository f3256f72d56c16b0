//! The disk image: built by the `bootloader` crate, then, for BIOS, tuned for QEMU's
//! TCG emulator, under which the BIOS stages took seconds. Time to the kernel banner
//! with the 2.5 MiB default initramfs (median of 5, `--timing`; stage 2 loads the files,
//! stages 3-4 switch to long mode and build the kernel's page tables):
//!
//! | image                          | stage 2  | stages 3-4 | banner  |
//! |--------------------------------|----------|------------|---------|
//! | as the bootloader builds it    | 5267 ms  | 688 ms     | 6317 ms |
//! | 32 KiB FAT clusters            | 2400 ms  | 687 ms     | 3208 ms |
//! | and the stack moved            |  207 ms  |  99 ms     |  476 ms |
//! | and `-cpu max,phys-bits=39`    |  230 ms  |  32 ms     |  456 ms |
//!
//! (The last row is [`crate::qemu::command`]'s doing.) What made the stages slow:
//!
//! 1. **Small FAT clusters.** Stage 2 (16-bit code) loads a file cluster by cluster,
//!    with two BIOS disk calls (`int 13h`) per cluster: one for the cluster's FAT entry
//!    and one that reads 16 KiB however small the cluster is. `DiskImageBuilder` formats
//!    the FAT partition with `fatfs`' defaults, 1 KiB clusters for a volume this small.
//!    We re-format the partition with [`BIOS_FAT_CLUSTER`]-byte clusters (same files,
//!    same place and size).
//! 2. **The stack shares a page with code.** The boot sector sets the stack to 0x7c00,
//!    just below itself, and stages 2, 3 and 4 all run on that stack: page 0x7000 holds
//!    both code (the boot sector, the start of stage 2) and the stack. TCG must notice
//!    code that modifies itself, so a store to a page it translated code from takes a
//!    slow path (a lock and a search for translated blocks to invalidate), and the page
//!    stays slow as long as one of its translated blocks lives: the whole boot. Every
//!    push, call and spilled local paid it; stage 2 copies each byte it loads with a
//!    store to the stack (~0.7 us per byte), stage 3 draws its boot text into the
//!    frame buffer pixel by pixel through calls. We patch two instructions: the boot
//!    sector's `mov sp, 0x7c00` becomes `mov sp, 0x7000` (the stack then lies in pages
//!    0x6000 and below, which hold no code; plenty for stages 2 and 3, whose frames are
//!    small), and stage 3's `and esp, 0xffffff00` before it jumps to stage 4 becomes
//!    `mov esp, 0x90000` (stage 4 needs ~30 KiB of stack, more than fits below 0x7000;
//!    0x80000-0x90000 is conventional memory nothing uses: stage 2's image ends at
//!    0x80000 and SeaBIOS keeps its extended BIOS data area above 0x90000). Each patch
//!    is applied only where the exact instruction bytes are found, once; the boot
//!    sector's only together with stage 3's, since stage 4 would overflow the smaller
//!    stack. Should the bootloader's binaries change, the stack stays where it was (the
//!    boot works, seconds slower) and the runner says so.
//!
//! UEFI images are left as the bootloader built them: OVMF's own drivers load the files.

use anyhow::{bail, Context, Result};
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::{Firmware, Options};

/// Cluster size of the re-formatted FAT partition. The BIOS stage reads at most 16 KiB
/// per disk call and looks up the FAT once per cluster; 32 KiB is the largest size
/// that `fatfs` calls fully compatible.
pub const BIOS_FAT_CLUSTER: u32 = 32 * 1024;

/// The boot sector's `cld; mov sp, 0x7c00` (bootloader-x86_64-bios-boot-sector, boot.s).
const BOOT_SECTOR_STACK: [u8; 4] = [0xfc, 0xbc, 0x00, 0x7c];
/// ... patched to `cld; mov sp, 0x7000`.
const BOOT_SECTOR_STACK_NEW: [u8; 4] = [0xfc, 0xbc, 0x00, 0x70];
/// Stage 3's `and esp, 0xffffff00; push 0` before the jump to stage 4
/// (bootloader-x86_64-bios-stage-3, `enter_long_mode_and_jump_to_stage_4`).
const STAGE_3_STACK: [u8; 8] = [0x81, 0xe4, 0x00, 0xff, 0xff, 0xff, 0x6a, 0x00];
/// ... patched to `mov esp, 0x90000; nop; push 0`.
const STAGE_3_STACK_NEW: [u8; 8] = [0xbc, 0x00, 0x00, 0x09, 0x00, 0x90, 0x6a, 0x00];
/// The FAT file that holds stage 3.
const STAGE_3_FILE: &str = "boot-stage-3";

/// MBR partition type of a FAT volume (FAT12, FAT16 and FAT32 variants).
fn is_fat_type(t: u8) -> bool {
    matches!(t, 0x01 | 0x04 | 0x06 | 0x0b | 0x0c | 0x0e)
}

/// Build the disk image for `opts.firmware` at `image` with the bootloader crate, its
/// own logging off; tune a BIOS image (see the module documentation).
pub fn build(opts: &Options, stripped: &Path, ramdisk: Option<&Path>, image: &Path) -> Result<()> {
    let mut builder = bootloader::DiskImageBuilder::new(stripped.to_path_buf());
    let mut config = bootloader::BootConfig::default();
    // The bootloader's own log is slow to print under emulation and not ours to show.
    config.frame_buffer_logging = false;
    config.serial_logging = false;
    builder.set_boot_config(&config);
    if let Some(ramdisk) = ramdisk {
        builder.set_ramdisk(ramdisk.to_path_buf());
    }
    match opts.firmware {
        Firmware::Bios => builder.create_bios_image(image),
        Firmware::Uefi => builder.create_uefi_image(image),
    }
    .with_context(|| format!("cannot create disk image {}", image.display()))?;
    if opts.firmware == Firmware::Bios {
        let stack_patched = tune_bios_image(image)
            .with_context(|| format!("cannot tune the BIOS image {}", image.display()))?;
        if !stack_patched {
            eprintln!(
                "[runner] note: the bootloader's BIOS stages are not the 0.11.15 binaries \
                 boot/src/image.rs knows; their stack stays in the boot sector's page and \
                 the boot takes seconds longer"
            );
        }
    }
    Ok(())
}

/// Replace the single occurrence of `old` in `bytes` by `new`; false (and no change) if
/// `old` occurs zero times or more than once.
fn patch_once(bytes: &mut [u8], old: &[u8], new: &[u8]) -> bool {
    assert_eq!(old.len(), new.len());
    let mut hits = bytes
        .windows(old.len())
        .enumerate()
        .filter(|(_, w)| *w == old);
    match (hits.next(), hits.next()) {
        (Some((at, _)), None) => {
            bytes[at..at + new.len()].copy_from_slice(new);
            true
        }
        _ => false,
    }
}

/// Where the FAT partition of an MBR disk image lies: (byte offset, byte length).
fn fat_partition(mbr: &[u8; 512]) -> Result<(u64, u64)> {
    if mbr[510..512] != [0x55, 0xaa] {
        bail!("no MBR boot signature");
    }
    for i in 0..4 {
        let e = &mbr[446 + 16 * i..446 + 16 * (i + 1)];
        if is_fat_type(e[4]) {
            let lba = u32::from_le_bytes(e[8..12].try_into().expect("4 bytes"));
            let sectors = u32::from_le_bytes(e[12..16].try_into().expect("4 bytes"));
            return Ok((u64::from(lba) * 512, u64::from(sectors) * 512));
        }
    }
    bail!("no FAT partition in the MBR partition table")
}

/// The files of a FAT volume's root directory (the bootloader puts everything there).
fn read_root_files(volume: &mut Cursor<Vec<u8>>) -> Result<Vec<(String, Vec<u8>)>> {
    let fs = fatfs::FileSystem::new(volume, fatfs::FsOptions::new())?;
    let mut files = Vec::new();
    for entry in fs.root_dir().iter() {
        let entry = entry?;
        if entry.is_dir() {
            bail!(
                "unexpected directory {} in the boot partition",
                entry.file_name()
            );
        }
        let mut data = Vec::new();
        entry.to_file().read_to_end(&mut data)?;
        files.push((entry.file_name(), data));
    }
    Ok(files)
}

/// Format `volume` afresh with `cluster`-byte clusters and write `files` into its root.
fn write_fat(
    volume: &mut Cursor<Vec<u8>>,
    cluster: u32,
    files: &[(String, Vec<u8>)],
) -> Result<()> {
    // Zero first: stage 2 copies whole clusters, so the slack after each file lands in
    // memory too (after stage 4, where its zero-initialised data lies).
    volume.get_mut().fill(0);
    volume.set_position(0);
    let options = fatfs::FormatVolumeOptions::new()
        .bytes_per_cluster(cluster)
        .volume_label(*b"MEMKERNEL  ");
    fatfs::format_volume(&mut *volume, options)?;
    let fs = fatfs::FileSystem::new(&mut *volume, fatfs::FsOptions::new())?;
    let root = fs.root_dir();
    for (name, data) in files {
        let mut file = root.create_file(name)?;
        file.truncate()?;
        file.write_all(data)
            .with_context(|| format!("{name}: the partition is too small"))?;
    }
    Ok(())
}

/// Tune the BIOS image at `image` (see the module documentation): big FAT clusters,
/// and the stack moved out of the boot sector's page. Returns whether the stack moved.
pub fn tune_bios_image(image: &Path) -> Result<bool> {
    let mut disk = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)?;
    let mut mbr = [0u8; 512];
    disk.read_exact(&mut mbr)?;
    let (offset, len) = fat_partition(&mbr)?;
    let mut volume = vec![0u8; usize::try_from(len)?];
    disk.seek(SeekFrom::Start(offset))?;
    disk.read_exact(&mut volume)?;
    let mut volume = Cursor::new(volume);
    let mut files = read_root_files(&mut volume)?;
    let stage_3_patched = files
        .iter_mut()
        .find(|(name, _)| name == STAGE_3_FILE)
        .is_some_and(|(_, data)| patch_once(data, &STAGE_3_STACK, &STAGE_3_STACK_NEW));
    write_fat(&mut volume, BIOS_FAT_CLUSTER, &files)?;
    disk.seek(SeekFrom::Start(offset))?;
    disk.write_all(volume.get_ref())?;
    // Only the boot code (before the partition table at 446) is searched.
    let stack_patched =
        stage_3_patched && patch_once(&mut mbr[..446], &BOOT_SECTOR_STACK, &BOOT_SECTOR_STACK_NEW);
    if stack_patched {
        disk.seek(SeekFrom::Start(0))?;
        disk.write_all(&mbr)?;
    }
    Ok(stack_patched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_only_a_single_exact_match() {
        let mut b = [1, 2, 3, 4, 5];
        assert!(patch_once(&mut b, &[2, 3], &[7, 8]));
        assert_eq!(b, [1, 7, 8, 4, 5]);
        let mut twice = [2, 3, 2, 3];
        assert!(!patch_once(&mut twice, &[2, 3], &[7, 8]));
        assert_eq!(twice, [2, 3, 2, 3]);
        assert!(!patch_once(&mut b, &[9, 9], &[0, 0]));
    }
}
