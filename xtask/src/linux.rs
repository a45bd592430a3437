//! Unmodified Linux as a Tantalum partition: a real Debian arm64 kernel and busybox, an
//! initramfs whose `/init` runs a small test chosen on the kernel command line, and an ext2
//! disk image to pass through as a virtio-blk device.
//!
//! Everything lives under `target/tantalum/linux/`: `cache/` (the Debian packages and what is
//! taken from them, see [`debian`]; delete it to pick up a newer kernel), `initramfs.cpio`
//! and `disk.img` (both rewritten on every [`assets`] call).
//!
//! `/init` reads `tantalum.test=<name>` from the kernel command line and prints `linux: ...`
//! lines on the console:
//! - `boot` (the default): `linux: cpus online: N`, `linux: disk says: <hello.txt of /dev/vda>`,
//!   `linux: TANTALUM-LINUX-MARKER`, then powers off.
//! - `reboot`: as `boot`; then on the first boot creates `/mnt/rebooted` on the disk, prints
//!   `linux: rebooting` and reboots; on the second prints `linux: second boot after reboot`,
//!   removes the file and powers off.
//! - `blk`: `/dev/vda` is a region of a disk a driver partition serves (docs/virtio.md):
//!   `tantalum.role=owner` writes 1 MiB and its MD5 into the file system there, syncs, reboots
//!   and reads them back (`linux: blk: 1048576 bytes read back, md5 ... as written`);
//!   `tantalum.role=other` finds no file system in its region, writes a marker there and
//!   watches its region for the owner's token.
//! - `devmem`: `linux: poking 0x<addr>` for `tantalum.poke=<hex>`, reads it with
//!   `devmem <addr> 32`, prints `linux: devmem returned: <output>`, its exit status and the
//!   signal that killed it if one did (`linux: devmem killed by SIGBUS`), then
//!   `linux: still running after devmem`, and powers off.
//! - `udp`: gives eth0 (a virtio-net link) `tantalum.ip`, then `chanping udp` sends
//!   `tantalum.count` UDP datagrams to `tantalum.peer` port 7 and checks every echo
//!   (`linux: chanping: udp: N datagrams echoed, 0 bad, ...`).
//! - `vsock`: `chanping vsock` connects with `AF_VSOCK` to the peer of each vsock link (the CID
//!   its virtio node names), port `tantalum.port`, and checks `tantalum.count` echoed messages
//!   (`linux: chanping: vsock: N messages echoed, 0 bad, ...`).
//! - `perf`: counts this process's CPU cycles with `perfcount` (`perf_event_open`, a sample
//!   period so that the PMU raises overflow interrupts) and prints `linux: perfcount: cycles N`
//!   and how many PMU interrupts Linux took meanwhile.
//! - `step`: `stepcount` does to a child process what gdb's `stepi`, `break` and `watch` do, with
//!   ptrace (single step, a hardware breakpoint, a watchpoint), and prints each line of its report
//!   as `linux: stepcount: ...`, then `linux: stepcount exit status: N`.
//! - `shell`: an interactive shell on the console (mounts the disk on /mnt if there is one);
//!   `poweroff` (or leaving the shell) powers off, `reboot` reboots.
//! - `marker`: `linux: cpus online: N` and `linux: TANTALUM-LINUX-MARKER` at once (no disk to
//!   wait for), then powers off: the x86_64 guest's test ([`x86_assets`]).
//!
//! For x86_64 guests, [`x86_assets`] takes Debian's amd64 cloud kernel (its `bzImage`) and
//! busybox into `cache-amd64/` and writes `initramfs-x86_64.cpio` (busybox, `/dev/console`,
//! the same `/init`, no modules).

mod cpio;
pub mod debian;
mod kmod;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{bail, step, Result};

/// What a Linux partition boots from.
#[derive(Debug, Clone)]
pub struct LinuxAssets {
    /// Raw arm64 `Image` (Debian's vmlinuz).
    pub kernel: PathBuf,
    /// Uncompressed newc cpio archive.
    pub initramfs: PathBuf,
    /// Raw 16 MiB disk image: an 8 MiB ext2 file system with `hello.txt`, then zeros; rewritten
    /// on every [`assets`] call.
    pub disk: PathBuf,
    /// `uname -r` of the kernel, e.g. `6.1.0-57-cloud-arm64`.
    pub kernel_version: String,
}

/// The text of `hello.txt` on the disk (the `boot` test prints `linux: disk says: <this>`).
pub const DISK_TEXT: &str = "hello from the passed-through virtio disk";
/// Printed by the `boot` and `reboot` tests once they have run their checks.
pub const MARKER: &str = "linux: TANTALUM-LINUX-MARKER";
/// Size of the file system on the disk image.
pub const DISK_SIZE: &str = "8M";
/// [`DISK_SIZE`] in bytes; the disk image is twice that (the second half empty).
pub const DISK_BYTES: u64 = 8 << 20;

/// `target/tantalum/linux/`.
pub fn dir() -> PathBuf {
    crate::root().join("target/tantalum/linux")
}

/// The kernel (fetched and cached on first use), a fresh initramfs and a fresh disk image.
/// Concurrent calls (threads or processes) are serialised by a lock file.
pub fn assets() -> Result<LinuxAssets> {
    let dir = dir();
    fs::create_dir_all(&dir)?;
    let lock = fs::File::create(dir.join(".lock"))?;
    lock.lock()?;
    let kernel = debian::fetch(&dir.join("cache"))?;
    let initramfs = dir.join("initramfs.cpio");
    debian::write_atomic(&initramfs, &initramfs_archive(&kernel)?)?;
    let disk = dir.join("disk.img");
    make_disk(&disk)?;
    Ok(LinuxAssets { kernel: kernel.image, initramfs, disk, kernel_version: kernel.version })
}

/// What an x86_64 Linux guest boots from.
#[derive(Debug, Clone)]
pub struct X86LinuxAssets {
    /// Debian's amd64 `bzImage` (vmlinuz), as the Linux x86 boot protocol loads it.
    pub bzimage: PathBuf,
    /// Uncompressed newc cpio archive: busybox, `/dev/console`, `/init`.
    pub initramfs: PathBuf,
    /// `uname -r` of the kernel, e.g. `6.1.0-57-cloud-amd64`.
    pub kernel_version: String,
}

/// The amd64 kernel (fetched and cached on first use in `cache-amd64/`) and a fresh initramfs.
pub fn x86_assets() -> Result<X86LinuxAssets> {
    let dir = dir();
    fs::create_dir_all(&dir)?;
    let lock = fs::File::create(dir.join(".lock"))?;
    lock.lock()?;
    let kernel = debian::fetch_for(&dir.join("cache-amd64"), debian::DebArch::Amd64)?;
    let initramfs = dir.join("initramfs-x86_64.cpio");
    debian::write_atomic(&initramfs, &x86_initramfs_archive(&kernel)?)?;
    Ok(X86LinuxAssets { bzimage: kernel.image, initramfs, kernel_version: kernel.version })
}

/// The x86_64 initramfs: busybox, `/dev/console` and `/init` (no modules: the guest needs none).
fn x86_initramfs_archive(kernel: &debian::Kernel) -> Result<Vec<u8>> {
    let mut a = cpio::Writer::new();
    for d in ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "mnt", "tmp", "etc", "root"]
    {
        a.dir(d, 0o755);
    }
    a.file("bin/busybox", 0o755, &fs::read(&kernel.busybox)?);
    a.symlink("bin/sh", "busybox");
    a.char_dev("dev/console", 0o600, 5, 1);
    a.file("init", 0o755, init_script(&[]).as_bytes());
    Ok(a.finish())
}

/// The initramfs: busybox, the modules, `/dev/console` and `/init`.
fn initramfs_archive(kernel: &debian::Kernel) -> Result<Vec<u8>> {
    let mut a = cpio::Writer::new();
    for d in [
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "mnt", "tmp", "etc", "root", "lib",
    ] {
        a.dir(d, 0o755);
    }
    a.dir("lib/modules", 0o755);
    a.file("bin/busybox", 0o755, &fs::read(&kernel.busybox)?);
    let chanping = crate::cargo::build_chanping()?;
    a.file("bin/chanping", 0o755, &fs::read(&chanping)?);
    // Built with chanping: perf stat's cycle count, for lack of Debian's (dynamic) perf.
    a.file("bin/perfcount", 0o755, &fs::read(chanping.with_file_name("perfcount"))?);
    // And gdb's stepi, break and watch, for lack of gdb or strace.
    a.file("bin/stepcount", 0o755, &fs::read(chanping.with_file_name("stepcount"))?);
    a.symlink("bin/sh", "busybox");
    a.char_dev("dev/console", 0o600, 5, 1);
    let mut names = Vec::new();
    for (name, path) in &kernel.modules {
        a.file(&format!("lib/modules/{name}.ko"), 0o644, &fs::read(path)?);
        names.push(name.clone());
    }
    a.file("init", 0o755, init_script(&names).as_bytes());
    Ok(a.finish())
}

/// `/init`, loading `modules` (names, in order) from `/lib/modules/<name>.ko`.
pub fn init_script(modules: &[String]) -> String {
    INIT.replace("@MODULES@", &modules.join(" "))
}

const INIT: &str = r#"#!/bin/busybox sh
# /init of Tantalum's Linux test initramfs, generated by xtask/src/linux.rs.
# The test comes from tantalum.test=<name> on the kernel command line: boot (the default),
# reboot, devmem (reads the address in tantalum.poke=<hex>) or shell. With tantalum.dmesg, the
# boot checks print the kernel log (with its timestamps) before the marker.
# init must never exit (the kernel would panic): every path ends in stop.
set +e
set -f
PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH
/bin/busybox mkdir -p /proc /sys /dev /mnt /tmp /bin /sbin /usr/bin /usr/sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() {
    echo "linux: $*"
}

# param NAME: prints the value of NAME=value on the kernel command line; fails if absent.
param() {
    for word in $CMDLINE; do
        case "$word" in
            "$1"=*) echo "${word#*=}"; return 0 ;;
        esac
    done
    return 1
}

stop() {
    sync
    poweroff -f
    while true; do sleep 1000; done
}

cpus() {
    say "cpus online: $(grep -c ^processor /proc/cpuinfo)"
}

# Mounts the virtio disk on /mnt, waiting up to 10 s for /dev/vda.
mount_disk() {
    i=0
    while [ ! -b /dev/vda ] && [ "$i" -lt 10 ]; do
        sleep 1
        i=$((i + 1))
    done
    if [ ! -b /dev/vda ]; then
        say "no disk: /dev/vda did not appear"
        return 1
    fi
    if ! mount -t ext2 /dev/vda /mnt; then
        say "cannot mount /dev/vda"
        return 1
    fi
}

# The PMU overflow interrupts taken so far, all CPUs (the counts after 'N:' in /proc/interrupts).
pmu_interrupts() {
    awk '/arm-pmu/ { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i } END { print s + 0 }' /proc/interrupts
}

boot_checks() {
    cpus
    # The PMU of the guest DT (perf's event source, its overflow interrupt), if a driver took it.
    pmu=$(ls /sys/bus/event_source/devices 2>/dev/null | grep -e armv8 -e pmu | tr '\n' ' ')
    say "pmu: ${pmu:-none}; interrupt: $(grep -c arm-pmu /proc/interrupts) line(s)"
    disk=0
    if mount_disk; then
        disk=1
        say "disk says: $(cat /mnt/hello.txt)"
    fi
    if param tantalum.dmesg >/dev/null; then
        dmesg | while read -r line; do say "dmesg $line"; done
    fi
    say "TANTALUM-LINUX-MARKER"
}

# The test data of the net test, in /tmp/data: $1 bytes of numbered lines, 1 MiB of them
# repeated (seq alone takes tens of seconds for 64 MiB under TCG; the root file system holds
# about half the partition's memory, so no second copy).
net_data() {
    seq 1 1000000 | head -c 1048576 > /tmp/block
    i=0
    while [ $((i * 1048576)) -lt "$1" ]; do
        cat /tmp/block
        i=$((i + 1))
    done | head -c "$1" > /tmp/data
    rm /tmp/block
}

# Waits for eth0 (the virtio-net link) and gives it tantalum.ip; fails if it never comes.
net_up() {
    ip=$(param tantalum.ip) || ip=10.0.0.1
    i=0
    while [ ! -e /sys/class/net/eth0 ] && [ "$i" -lt 20 ]; do
        sleep 1
        i=$((i + 1))
    done
    if [ ! -e /sys/class/net/eth0 ]; then
        say "net: no eth0"
        return 1
    fi
    ip link set lo up
    ip addr add "$ip/24" dev eth0
    ip link set eth0 up
    say "net: eth0 $(cat /sys/class/net/eth0/address) is $ip"
}

net_test() {
    peer=$(param tantalum.peer) || peer=10.0.0.2
    role=$(param tantalum.role) || role=send
    bytes=$(param tantalum.bytes) || bytes=1048576
    net_up || return
    i=0
    until ping -c 1 -W 1 "$peer" >/dev/null 2>&1; do
        i=$((i + 1))
        if [ "$i" -ge 60 ]; then
            say "net: $peer does not answer"
            return
        fi
    done
    say "net: ping $peer: $(ping -c 5 -i 0.2 "$peer" | grep -o '[0-9]* packets received')"
    say "net: $(ping -c 20 -i 0.05 "$peer" | grep round-trip)"
    if [ "$bytes" = 0 ]; then
        :
    elif [ "$role" = receive ]; then
        # busybox nc copies its stdin to the socket too, and half-closes the connection at the
        # end of it; the sender's nc exits on that FIN, whatever it has left to send. A
        # background job's stdin is /dev/null (EOF at once): give the listener a pipe that
        # stays open instead. Stop listening once the whole file is in.
        sleep 1000 | nc -l -p 5000 > /tmp/data &
        listener=$!
        got=0
        i=0
        while [ "$got" -lt "$bytes" ] && [ "$i" -lt 3000 ]; do
            [ "$got" = 0 ] && start=$(cut -d' ' -f1 /proc/uptime)
            sleep 0.1
            got=$(stat -c %s /tmp/data)
            i=$((i + 1))
            [ $((i % 100)) = 0 ] && say "net: $got bytes so far; $(grep eth0 /proc/net/dev)"
        done
        end=$(cut -d' ' -f1 /proc/uptime)
        kill "$listener" 2>/dev/null
        sum=$(md5sum < /tmp/data | cut -d' ' -f1)
        say "net: received $got bytes, md5 $sum"
        say "net: $(awk "BEGIN { printf \"%.2f MiB/s\", $got / ($end - $start) / 1048576 }") received"
        # Tell the sender, which waits for it (closing its socket does not wait for delivery).
        echo "$got $sum" | nc "$peer" 5001 &
        sleep 1
        kill $! 2>/dev/null
    else
        net_data "$bytes"
        say "net: sending $bytes bytes, md5 $(md5sum < /tmp/data | cut -d' ' -f1)"
        : > /tmp/ack
        sleep 1000 | nc -l -p 5001 > /tmp/ack & # (an open stdin: see the receiver)
        listener=$!
        i=0
        start=$(cut -d' ' -f1 /proc/uptime)
        until nc "$peer" 5000 < /tmp/data; do
            i=$((i + 1))
            [ "$i" -lt 50 ] || break
            sleep 0.2
            start=$(cut -d' ' -f1 /proc/uptime)
        done
        i=0
        while [ ! -s /tmp/ack ] && [ "$i" -lt 3000 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        end=$(cut -d' ' -f1 /proc/uptime)
        kill "$listener" 2>/dev/null
        say "net: the receiver says: $(cat /tmp/ack)"
        say "net: $(awk "BEGIN { printf \"%.2f MiB/s\", $bytes / ($end - $start) / 1048576 }") sent"
    fi
    # Stay up a little so that the peer's last packets find us.
    sleep 2
}

# The blk test (docs/virtio.md, "Block"): /dev/vda is a region of a disk a driver partition
# serves. tantalum.role=owner: the region holds the test file system; the first boot writes 1 MiB
# and its MD5 there, syncs and reboots, the second reads them back, then looks for the other
# frontend's marker in its whole region. tantalum.role=other: a region of its own (no file
# system), where it writes a marker, then looks for the owner's token for up to tantalum.watch
# seconds (150 by default).
BLK_TOKEN=tantalum-blk-token-of-the-owner
BLK_MARKER=tantalum-blk-marker-of-the-other
blk_test() {
    role=$(param tantalum.role) || role=owner
    i=0
    while [ ! -b /dev/vda ] && [ "$i" -lt 20 ]; do
        sleep 1
        i=$((i + 1))
    done
    if [ ! -b /dev/vda ]; then
        say "blk: no disk: /dev/vda did not appear"
        return
    fi
    say "blk: /dev/vda has $(cat /sys/block/vda/size) sectors"
    if [ "$role" = other ]; then
        if mount -t ext2 /dev/vda /mnt 2>/dev/null; then
            say "blk: mounted a file system in this region"
            umount /mnt
        else
            say "blk: no file system in this region"
        fi
        echo "$BLK_MARKER" | dd of=/dev/vda bs=512 seek=8 conv=sync 2>/dev/null
        sync
        echo 3 > /proc/sys/vm/drop_caches
        say "blk: marker written, read back: $(dd if=/dev/vda bs=512 skip=8 count=1 2>/dev/null | tr -d '\000')"
        watch=$(param tantalum.watch) || watch=150
        i=0
        n=0
        while [ "$i" -lt "$watch" ]; do
            sleep 5
            i=$((i + 5))
            echo 3 > /proc/sys/vm/drop_caches
            n=$(grep -c "$BLK_TOKEN" /dev/vda)
            [ "$n" = 0 ] || break
        done
        say "blk: the owner's token appears $n times in this region after $i s"
        return
    fi
    if ! mount -t ext2 /dev/vda /mnt; then
        say "blk: cannot mount /dev/vda"
        return
    fi
    if [ -e /mnt/blk-data ]; then
        say "blk: second boot, the file system says: $(cat /mnt/blk-token)"
        sum=$(md5sum < /mnt/blk-data | cut -d' ' -f1)
        if [ "$sum" = "$(cat /mnt/blk-md5)" ]; then
            say "blk: $(stat -c %s /mnt/blk-data) bytes read back, md5 $sum as written"
        else
            say "blk: read back md5 $sum, written $(cat /mnt/blk-md5)"
        fi
        umount /mnt
        echo 3 > /proc/sys/vm/drop_caches
        start=$(cut -d' ' -f1 /proc/uptime)
        dd if=/dev/vda of=/dev/null bs=65536 2>/dev/null
        end=$(cut -d' ' -f1 /proc/uptime)
        bytes=$(($(cat /sys/block/vda/size) * 512))
        say "blk: read the whole region ($bytes bytes) at $(awk "BEGIN { printf \"%.2f MiB/s\", $bytes / ($end - $start + 0.001) / 1048576 }")"
        echo 3 > /proc/sys/vm/drop_caches
        say "blk: the other's marker appears $(grep -c "$BLK_MARKER" /dev/vda) times in this region"
    else
        head -c 1048576 /dev/urandom > /tmp/blk-data
        start=$(cut -d' ' -f1 /proc/uptime)
        cp /tmp/blk-data /mnt/blk-data
        sync
        end=$(cut -d' ' -f1 /proc/uptime)
        md5sum < /tmp/blk-data | cut -d' ' -f1 > /mnt/blk-md5
        echo "$BLK_TOKEN" > /mnt/blk-token
        sync
        say "blk: wrote 1048576 bytes, md5 $(cat /mnt/blk-md5), synced in $(awk "BEGIN { printf \"%.2f\", $end - $start }") s; rebooting"
        umount /mnt
        reboot -f
        while true; do sleep 1000; done
    fi
}

CMDLINE=$(cat /proc/cmdline)
for m in @MODULES@; do
    insmod "/lib/modules/$m.ko" || say "insmod $m failed"
done
name=$(param tantalum.test) || name=boot
say "init: test $name, kernel $(uname -r)"

case "$name" in
boot)
    boot_checks
    ;;
reboot)
    boot_checks
    if [ "$disk" != 1 ]; then
        say "the reboot test needs the disk"
    elif [ -e /mnt/rebooted ]; then
        say "second boot after reboot"
        rm -f /mnt/rebooted
        sync
        umount /mnt
    else
        echo yes > /mnt/rebooted
        sync
        umount /mnt
        say "rebooting"
        reboot -f
        while true; do sleep 1000; done
    fi
    ;;
blk)
    blk_test
    ;;
marker)
    cpus
    say "TANTALUM-LINUX-MARKER"
    ;;
channel)
    # Linux user space <-> a unikernel over each channel in the guest DT, no kernel module:
    # /dev/mem maps the channel, a store to its doorbell page rings the peer.
    found=0
    set +f
    for d in /proc/device-tree/channel@*; do
        [ -d "$d" ] || continue
        found=1
        count=$(param tantalum.count) || count=100
        say "channel $(cat "$d/tantalum,name") with $(cat "$d/tantalum,peer")"
        chanping "$d" "$count"
    done
    [ "$found" = 1 ] || say "no channel in the device tree"
    ;;
net)
    # A virtio-net link (docs/virtio.md): configure eth0, ping the peer, then the sender sends
    # tantalum.bytes of deterministic data over TCP with nc and both print the MD5.
    net_test
    ;;
udp)
    # A unikernel on the virtio-net link echoes UDP datagrams (docs/virtio.md): chanping sends
    # tantalum.count of them to tantalum.peer, port 7, and checks every echo.
    count=$(param tantalum.count) || count=100
    # tantalum.peer may list several, comma-separated (unikernels on a switch).
    net_up && for peer in $(param tantalum.peer | tr ',' ' '); do
        chanping udp "$peer" 7 "$count" || break
    done
    ;;
vsock)
    # A unikernel on the vsock link echoes a stream (docs/virtio.md): chanping connects with
    # AF_VSOCK to the peer CID its virtio node names, port tantalum.port, sends tantalum.count
    # messages and checks every echo.
    count=$(param tantalum.count) || count=100
    port=$(param tantalum.port) || port=1234
    found=0
    set +f
    for d in /proc/device-tree/virtio_mmio@*; do
        [ -e "$d/tantalum,peer-cid" ] || continue
        found=1
        say "vsock link $(cat "$d/tantalum,name") with $(cat "$d/tantalum,peer")"
        chanping vsock "$d" "$port" "$count"
    done
    set -f
    [ "$found" = 1 ] || say "no vsock link in the device tree"
    ;;
perf)
    # perf stat -e cycles, as perfcount does it (Debian's perf is not in this initramfs); its
    # sample period makes the PMU raise overflow interrupts.
    cpus
    set +f
    say "pmu events: $(ls /sys/bus/event_source/devices/armv8_pmuv3*/events 2>/dev/null | tr '\n' ' ')"
    set -f
    before=$(pmu_interrupts)
    say "$(perfcount 2>&1)"
    say "pmu overflow interrupts during perfcount: $(($(pmu_interrupts) - before))"
    ;;
step)
    # gdb's stepi, break and watch on a child process, as stepcount does them with ptrace (no
    # gdb or strace in this initramfs): the partition's own single step, breakpoints, watchpoints.
    cpus
    out=$(stepcount 2>&1)
    rc=$?
    echo "$out" | while read -r line; do say "$line"; done
    say "stepcount exit status: $rc"
    ;;
devmem)
    cpus
    if addr=$(param tantalum.poke); then
        addr=${addr#0x}
        addr=${addr#0X}
        say "poking 0x$addr"
        out=$(devmem "0x$addr" 32 2>&1)
        rc=$?
        say "devmem returned: $out"
        say "devmem exit status: $rc"
        # Killed by a signal: 128 + its number (SIGBUS for an external abort).
        [ "$rc" -gt 128 ] && say "devmem killed by SIG$(kill -l $((rc - 128)))"
        say "still running after devmem"
    else
        say "the devmem test needs tantalum.poke=<hex address>"
    fi
    ;;
shell)
    if [ -b /dev/vda ] && mount -t ext2 /dev/vda /mnt; then
        say "disk mounted on /mnt"
    fi
    # On a virtio-net link or switch (tantalum.ip given): eth0 up first.
    if param tantalum.ip >/dev/null; then
        net_up
    fi
    say "shell on the console: poweroff (or exit) powers Linux off, reboot restarts it"
    # busybox's poweroff, halt and reboot signal init (USR2, USR1, TERM), and a shell as init
    # ignores signals it does not trap. Trapped, they act at once only while this shell waits
    # in `wait`, not while it runs the interactive shell in the foreground.
    trap 'echo; say "powering off"; stop' USR1 USR2
    trap 'echo; say "restarting"; sync; reboot -f' TERM
    setsid cttyhack sh </dev/console >/dev/console 2>&1 &
    wait
    ;;
*)
    say "unknown test '$name' (boot, reboot, blk, channel, net, udp, vsock, perf, step, devmem, shell, marker)"
    ;;
esac
stop
"#;

/// Writes a fresh ext2 disk image at `path` holding `hello.txt` ([`DISK_TEXT`]).
pub fn make_disk(path: &Path) -> Result<()> {
    let mke2fs = mke2fs()?;
    let content = path.with_extension("root");
    if content.exists() {
        fs::remove_dir_all(&content)?;
    }
    fs::create_dir_all(&content)?;
    fs::write(content.join("hello.txt"), format!("{DISK_TEXT}\n"))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let out = Command::new(&mke2fs)
        .args(["-q", "-F", "-t", "ext2", "-E", "root_owner=0:0", "-d"])
        .arg(&content)
        .arg(&tmp)
        .arg(DISK_SIZE)
        .stdin(Stdio::null())
        .output()?;
    fs::remove_dir_all(&content)?;
    if !out.status.success() {
        let _ = fs::remove_file(&tmp);
        bail!(
            "{} failed: {}{}",
            mke2fs.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Twice the file system: a disk split into regions for two partitions (the blk test) gives
    // the first the file system and the second an empty half.
    fs::OpenOptions::new().write(true).open(&tmp)?.set_len(2 * DISK_BYTES)?;
    fs::rename(&tmp, path)?;
    Ok(())
}

/// mke2fs, installed (e2fsprogs) as root if missing.
fn mke2fs() -> Result<PathBuf> {
    crate::tools::on_demand("mke2fs", "it makes the Linux guests' disk")
}

/// The bare QEMU command (no hypervisor, the default board's machine at EL1 with 2 CPUs and
/// 512 MiB) that boots the assets with `tantalum.test=<test>`.
pub fn bare_qemu(assets: &LinuxAssets, test: &str) -> Result<Command> {
    let board =
        crate::board::Board::load(&crate::board::board_of(&crate::root().join(crate::DEFAULT_CONFIG))?)?;
    let mut c = crate::qemu::Machine::of(&board).without_el2().with_size(2, "512M").command(&assets.kernel);
    c.arg("-nographic");
    c.arg("-initrd").arg(&assets.initramfs);
    c.args(["-append", &format!("console=ttyAMA0 tantalum.test={test}")]);
    c.args(crate::devices::disk_args(&assets.disk)?);
    Ok(c)
}

/// Lines a run of `test` must print (for `boot` and `reboot`; other tests: none), with `cpus`
/// CPUs online.
pub fn expected_lines(test: &str, cpus: usize) -> Vec<String> {
    let boot = vec![
        format!("linux: cpus online: {cpus}"),
        format!("linux: disk says: {DISK_TEXT}"),
        MARKER.to_string(),
    ];
    match test {
        "boot" => boot,
        "reboot" => {
            let mut lines = boot;
            lines.extend(["linux: rebooting".to_string(), "linux: second boot after reboot".to_string()]);
            lines
        }
        _ => Vec::new(),
    }
}

/// `cargo xtask linux-assets [--boot TEST]`: makes the assets and prints their paths; with
/// `boot`, boots them bare in QEMU (no hypervisor, 2 CPUs) under a 120 s limit, echoing the
/// console, and checks the [`expected_lines`].
pub fn command(boot: Option<&str>) -> Result<()> {
    let assets = assets()?;
    println!("kernel: {}", assets.kernel.display());
    println!("kernel-version: {}", assets.kernel_version);
    println!("initramfs: {}", assets.initramfs.display());
    println!("disk: {}", assets.disk.display());
    let Some(test) = boot else { return Ok(()) };
    crate::tools::ensure()?;
    step(format!("booting Linux bare in QEMU (tantalum.test={test}; quit with Ctrl-A X)"));
    let limit = Duration::from_secs(120);
    let run = crate::qemu::run_command(bare_qemu(&assets, test)?, Some(limit), true)?;
    let Some(status) = run.status else {
        bail!("QEMU still running after {} s: stopped it", limit.as_secs())
    };
    step(format!("QEMU exited ({status}) after {:.1} s", run.elapsed.as_secs_f64()));
    if !status.success() {
        bail!("QEMU exited with {status}");
    }
    let missing: Vec<String> = expected_lines(test, 2)
        .into_iter()
        .filter(|l| !run.output.lines().any(|o| o.trim_end() == l))
        .collect();
    if !missing.is_empty() {
        bail!("the console lacks:\n    {}", missing.join("\n    "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modules() -> Vec<String> {
        ["virtio_ring", "virtio", "virtio_mmio", "virtio_blk"].map(String::from).to_vec()
    }

    #[test]
    fn init_prints_the_expected_lines() {
        let script = init_script(&modules());
        assert!(script.contains(&MARKER["linux: ".len()..]));
        for line in expected_lines("reboot", 2) {
            // Each expected line is a `say` in the script (the cpu count and disk text are filled in).
            let text = line.strip_prefix("linux: ").unwrap();
            let stem = text.split(": ").next().unwrap();
            assert!(script.contains(&format!("say \"{stem}")), "{line}");
        }
        assert!(expected_lines("shell", 1).is_empty());
    }

    #[test]
    fn init_script_is_valid_shell() {
        let script = init_script(&modules());
        assert!(script.starts_with("#!/bin/busybox sh\n"));
        assert!(script.contains("for m in virtio_ring virtio virtio_mmio virtio_blk; do"));
        assert!(!script.contains("@MODULES@"));
        let out = Command::new("sh").args(["-n", "-c", &script]).output().unwrap();
        assert!(out.status.success(), "sh -n: {}", String::from_utf8_lossy(&out.stderr));
        assert!(script.trim_end().ends_with("stop"));
    }

    /// The `param` function of /init, run by the host's sh on made-up command lines.
    #[test]
    fn init_reads_the_command_line() {
        let script = init_script(&modules());
        let start = script.find("param() {").unwrap();
        let end = start + script[start..].find("\n}\n").unwrap() + 3;
        let param = &script[start..end];
        let run = |cmdline: &str, name: &str| {
            let program = format!("set -f\nCMDLINE='{cmdline}'\n{param}param {name} || echo ABSENT");
            let out = Command::new("sh").args(["-c", &program]).output().unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        let cmdline =
            "console=ttyAMA0 earlycon tantalum.test=reboot tantalum.poke=0x9000000 root=/dev/* quiet";
        assert_eq!(run(cmdline, "tantalum.test"), "reboot");
        assert_eq!(run(cmdline, "tantalum.poke"), "0x9000000");
        assert_eq!(run(cmdline, "console"), "ttyAMA0");
        assert_eq!(run(cmdline, "root"), "/dev/*");
        assert_eq!(run(cmdline, "tantalum"), "ABSENT");
        assert_eq!(run(cmdline, "test"), "ABSENT");
        assert_eq!(run(cmdline, "earlycon"), "ABSENT");
        assert_eq!(run("console=ttyAMA0", "tantalum.test"), "ABSENT");
        assert_eq!(run("tantalum.test=", "tantalum.test"), "");
    }

    #[test]
    fn initramfs_layout() {
        let dir = std::env::temp_dir().join(format!("tantalum-linux-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let busybox = dir.join("busybox");
        fs::write(&busybox, b"\x7fELF busybox").unwrap();
        let module = dir.join("virtio.ko");
        fs::write(&module, b"\x7fELF module").unwrap();
        let kernel = debian::Kernel {
            version: "6.1.0-1-cloud-arm64".into(),
            image: dir.join("Image"),
            busybox,
            modules: vec![("virtio".into(), module)],
        };
        let archive = initramfs_archive(&kernel).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let entries = cpio::parse::entries(&archive);
        let get = |name: &str| entries.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(get("bin/busybox").mode, cpio::S_IFREG | 0o755);
        assert_eq!(get("bin/busybox").data, b"\x7fELF busybox");
        assert_eq!(get("bin/sh").mode, cpio::S_IFLNK | 0o777);
        assert_eq!(get("bin/sh").data, b"busybox");
        assert_eq!(get("dev/console").mode, cpio::S_IFCHR | 0o600);
        assert_eq!(get("dev/console").rdev, (5, 1));
        assert_eq!(get("init").mode, cpio::S_IFREG | 0o755);
        assert!(get("init").data.starts_with(b"#!/bin/busybox sh\n"));
        assert_eq!(get("lib/modules/virtio.ko").data, b"\x7fELF module");
        for tool in ["bin/chanping", "bin/perfcount", "bin/stepcount"] {
            assert_eq!(get(tool).mode, cpio::S_IFREG | 0o755, "{tool}");
            assert!(get(tool).data.starts_with(b"\x7fELF"), "{tool}");
        }
        let init = String::from_utf8_lossy(&get("init").data).into_owned();
        assert!(init.contains("\nstep)\n") && init.contains("out=$(stepcount 2>&1)"));
        for d in ["dev", "proc", "sys", "mnt", "tmp", "bin", "sbin", "usr/bin", "usr/sbin"] {
            assert_eq!(get(d).mode, cpio::S_IFDIR | 0o755, "{d}");
        }
        // Parents come before their children, as the kernel's unpacker needs.
        let pos = |name: &str| entries.iter().position(|e| e.name == name).unwrap();
        assert!(pos("usr") < pos("usr/bin"));
        assert!(pos("lib/modules") < pos("lib/modules/virtio.ko"));
        assert!(pos("bin") < pos("bin/sh"));
    }

    #[test]
    fn x86_initramfs_layout() {
        let dir = std::env::temp_dir().join(format!("tantalum-linux-x86-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let busybox = dir.join("busybox");
        fs::write(&busybox, b"\x7fELF busybox").unwrap();
        let kernel = debian::Kernel {
            version: "6.1.0-1-cloud-amd64".into(),
            image: dir.join("bzImage"),
            busybox,
            modules: Vec::new(),
        };
        let archive = x86_initramfs_archive(&kernel).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let entries = cpio::parse::entries(&archive);
        let get = |name: &str| entries.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(get("bin/busybox").data, b"\x7fELF busybox");
        assert_eq!(get("dev/console").rdev, (5, 1));
        assert!(get("init").data.starts_with(b"#!/bin/busybox sh\n"));
        assert!(!entries.iter().any(|e| e.name.starts_with("lib/modules/")), "no modules on x86");
        let init = String::from_utf8_lossy(&get("init").data).into_owned();
        assert!(init.contains("\nmarker)\n    cpus\n    say \"TANTALUM-LINUX-MARKER\""));
    }

    /// Needs mke2fs (e2fsprogs), which the Debian hosts have; skipped when it is missing.
    #[test]
    fn disk_image_is_ext2() {
        if crate::tools::find_anywhere("mke2fs").is_none() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("tantalum-disk-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let disk = dir.join("disk.img");
        make_disk(&disk).unwrap();
        let image = fs::read(&disk).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(image.len() as u64, 2 * DISK_BYTES);
        // ext2 superblock at 1024: magic 0xEF53 at offset 56; 1 KiB blocks (s_log_block_size 0
        // at 24), as many as DISK_BYTES holds (s_blocks_count at 4); the second half empty.
        assert_eq!(&image[1024 + 56..1024 + 58], &[0x53, 0xEF]);
        let blocks = u32::from_le_bytes(image[1028..1032].try_into().unwrap());
        let log = u32::from_le_bytes(image[1048..1052].try_into().unwrap());
        assert_eq!(u64::from(blocks) << (10 + log), DISK_BYTES);
        assert!(image[DISK_BYTES as usize..].iter().all(|&b| b == 0));
        let text = format!("{DISK_TEXT}\n");
        assert!(image.windows(text.len()).any(|w| w == text.as_bytes()));
    }
}
