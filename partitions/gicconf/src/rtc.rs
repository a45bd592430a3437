//! The PL031 real-time clock's alarm, a level-sensitive SPI: raised at once by matching the
//! current second, held until cleared (`RTCICR`). Found in the device tree (QEMU virt's own, or
//! the guest DT's passed-through node).

/// PL031 registers: data, match, interrupt mask, raw status, clear.
const RTCDR: usize = 0x00;
const RTCMR: usize = 0x04;
const RTCIMSC: usize = 0x10;
const RTCRIS: usize = 0x14;
const RTCICR: usize = 0x1c;

pub struct Rtc {
    base: usize,
    pub intid: u32,
}

impl Rtc {
    /// The first `arm,pl031` node with an MMIO range and an SPI.
    pub fn from_dt() -> Option<Rtc> {
        let fdt = tantalum_guest::dt::get()?;
        let node =
            fdt.all_nodes().find(|n| n.compatible().is_some_and(|c| c.all().any(|s| s == "arm,pl031")))?;
        let base = tantalum_guest::dt::numbers(node.property("reg")?.value, 2).next()?;
        let mut cells = tantalum_guest::dt::numbers(node.property("interrupts")?.value, 1);
        let (kind, number) = (cells.next()?, cells.next()?);
        (kind == 0).then_some(Rtc { base: base as usize, intid: 32 + number as u32 })
    }

    fn reg(&self, offset: usize) -> *mut u32 {
        (self.base + offset) as *mut u32
    }

    /// Raises the alarm now: the match register set to the current second, its interrupt
    /// unmasked (again if the second turned over in between).
    pub fn alarm_now(&self) {
        // SAFETY: registers of the PL031 this program owns (passed through, or the machine's
        // with no one else running), device memory in the SDK's map.
        unsafe {
            self.reg(RTCIMSC).write_volatile(1);
            for _ in 0..4 {
                let now = self.reg(RTCDR).read_volatile();
                self.reg(RTCMR).write_volatile(now);
                if self.reg(RTCRIS).read_volatile() & 1 != 0 {
                    break;
                }
            }
        }
    }

    /// Clears the alarm: the line goes low.
    pub fn clear(&self) {
        // SAFETY: as in `alarm_now`.
        unsafe { self.reg(RTCICR).write_volatile(1) };
    }

    /// Clears and masks the alarm interrupt.
    pub fn quiet(&self) {
        self.clear();
        // SAFETY: as in `alarm_now`.
        unsafe { self.reg(RTCIMSC).write_volatile(0) };
    }
}
