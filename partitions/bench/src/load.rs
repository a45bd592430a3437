//! `role=load`: keeps its CPU and the hypervisor busy (hypercalls, trapped GIC reads, doorbells
//! to its peer on channel 0) while another partition measures, until that partition (`watch=ID`)
//! has stopped: the "busy system" of `configs/bench-busy.dts`.

use tantalum_guest::hypercall::{hvc, partition_running, HYP_CHANNEL_NOTIFY, HYP_VERSION};
use tantalum_guest::irq;

pub fn run(watch: u64) {
    irq::init();
    // The peer's doorbells interrupt this CPU (a handler that does nothing).
    if let Some((_, _, _, doorbell)) = crate::doorbell::channel() {
        irq::set_handler(doorbell, |_| {});
    }
    irq::enable();
    let (gicd, _, _) = irq::frames();
    loop {
        for _ in 0..64 {
            hvc(HYP_VERSION, [0; 6]);
            // SAFETY: GICD_CTLR of this partition's own virtual GIC.
            let _ = unsafe { core::ptr::read_volatile(gicd as *const u32) };
            hvc(HYP_CHANNEL_NOTIFY, [0; 6]);
        }
        if partition_running(watch) != Some(true) {
            return;
        }
    }
}
