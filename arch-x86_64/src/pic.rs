//! What the hypervisor learns from a PC guest's writes to the master 8259 PIC it owns: the
//! writes exit (the PIC's two ports are left out of the guest's I/O bitmap), the hypervisor
//! performs them on the real PIC and follows the initialisation sequence here. The vector base
//! (ICW2) and the mask (OCW1) say which vector, if any, the guest expects for an ISA interrupt
//! line the hypervisor raises itself: the virtual 16550's IRQ 4 (docs/x86.md, "Linux on x86").
//! Plain state, tested on the host.

/// The master PIC's ports: command (ICW1, OCW2, OCW3) and data (ICW2..4, OCW1).
pub const COMMAND: u16 = 0x20;
pub const DATA: u16 = 0x21;

/// Which byte the data port expects next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    Ocw1,
    Icw2,
    Icw3,
    Icw4,
}

/// The master 8259 as its writes set it up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MasterPic {
    /// ICW2: vectors of IRQ 0..7 are `base + irq`; `None` until initialised.
    base: Option<u8>,
    /// OCW1: a set bit masks that IRQ.
    mask: u8,
    next: Next,
    /// From ICW1: cascaded (ICW3 follows), ICW4 follows.
    cascaded: bool,
    icw4: bool,
}

impl Default for MasterPic {
    fn default() -> Self {
        Self::new()
    }
}

impl MasterPic {
    /// Before the guest initialises it: no vector.
    pub const fn new() -> Self {
        Self { base: None, mask: 0xff, next: Next::Ocw1, cascaded: false, icw4: false }
    }

    /// Follows a byte the guest wrote to `port` ([`COMMAND`] or [`DATA`]; others are ignored).
    pub fn write(&mut self, port: u16, value: u8) {
        const ICW1: u8 = 1 << 4;
        match port {
            COMMAND if value & ICW1 != 0 => {
                // Initialisation clears the mask; ICW2 follows on the data port.
                self.mask = 0;
                self.base = None;
                self.cascaded = value & 0b10 == 0;
                self.icw4 = value & 0b01 != 0;
                self.next = Next::Icw2;
            }
            DATA => match self.next {
                Next::Ocw1 => self.mask = value,
                Next::Icw2 => {
                    self.base = Some(value & 0xf8);
                    self.next = self.after(Next::Icw2);
                }
                Next::Icw3 => self.next = self.after(Next::Icw3),
                Next::Icw4 => self.next = Next::Ocw1,
            },
            // OCW2 (EOI) and OCW3 (register reads) change neither base nor mask.
            _ => {}
        }
    }

    fn after(&self, step: Next) -> Next {
        match step {
            Next::Icw2 if self.cascaded => Next::Icw3,
            Next::Icw2 | Next::Icw3 if self.icw4 => Next::Icw4,
            _ => Next::Ocw1,
        }
    }

    /// The vector the guest expects for master IRQ `irq` (0..8), if it initialised the PIC and
    /// has that line unmasked.
    pub fn vector(&self, irq: u8) -> Option<u8> {
        if irq >= 8 || self.mask & (1 << irq) != 0 || self.next != Next::Ocw1 {
            return None;
        }
        self.base.map(|b| b + irq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux's init_8259A: ICW1 0x11, ICW2 0x30, ICW3 0x04, ICW4 0x01, then masks.
    fn linux_init(pic: &mut MasterPic) {
        pic.write(DATA, 0xff);
        pic.write(COMMAND, 0x11);
        pic.write(DATA, 0x30);
        pic.write(DATA, 0x04);
        pic.write(DATA, 0x01);
    }

    #[test]
    fn linux_sequence() {
        let mut pic = MasterPic::new();
        assert_eq!(pic.vector(4), None, "not initialised");
        linux_init(&mut pic);
        assert_eq!(pic.vector(4), Some(0x34), "ICW2 0x30, nothing masked after init");
        pic.write(DATA, 0xfb); // everything masked but the cascade
        assert_eq!(pic.vector(4), None);
        pic.write(DATA, 0xea); // IRQ 0, 2 and 4 unmasked
        assert_eq!(pic.vector(0), Some(0x30));
        assert_eq!(pic.vector(4), Some(0x34));
        pic.write(COMMAND, 0x64); // specific EOI: no change
        pic.write(COMMAND, 0x0b); // OCW3
        assert_eq!(pic.vector(4), Some(0x34));
        assert_eq!(pic.vector(8), None);
    }

    #[test]
    fn single_pic_without_icw4_and_hostile_bases() {
        let mut pic = MasterPic::new();
        pic.write(COMMAND, 0x12); // single, no ICW4
        assert_eq!(pic.vector(0), None, "ICW2 still due");
        pic.write(DATA, 0x47); // low bits of ICW2 are not the base
        assert_eq!(pic.vector(1), Some(0x41));
        pic.write(DATA, 0xff);
        assert_eq!(pic.vector(1), None, "the next data byte is OCW1");
        // Re-initialising mid-way: no vector until the sequence ends.
        pic.write(COMMAND, 0x11);
        pic.write(DATA, 0xf8);
        assert_eq!(pic.vector(7), None, "ICW3 and ICW4 still due");
        pic.write(DATA, 0x04);
        pic.write(DATA, 0x01);
        assert_eq!(pic.vector(7), Some(0xff));
        pic.write(0x22, 0x00);
        assert_eq!(pic.vector(7), Some(0xff), "other ports are ignored");
    }
}
