//! The virtio-mmio register window (virtio 1.2 §4.2.2, version 2): one per device, in the
//! frontend's guest-physical space, every access trapped. Only the transport: what the device
//! does with its queues is the caller's (`net`).
#![forbid(unsafe_code)]

use super::queue::{QueueError, Ring, QUEUE_MAX};
use super::Owner;

/// "virt", little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// "TNTA": Tantalum's vendor ID.
pub const VENDOR: u32 = 0x4154_4e54;
/// Device IDs (virtio 1.2 §5).
pub const DEVICE_NET: u32 = 1;
pub const DEVICE_BLK: u32 = 2;
pub const DEVICE_VSOCK: u32 = 19;
/// Feature bits (virtio 1.2 §6, §5.1.3).
pub const F_VERSION_1: u64 = 1 << 32;
pub const NET_F_MAC: u64 = 1 << 5;
/// Device status bits (virtio 1.2 §2.1).
pub const STATUS_ACKNOWLEDGE: u32 = 1;
pub const STATUS_DRIVER: u32 = 2;
pub const STATUS_DRIVER_OK: u32 = 4;
pub const STATUS_FEATURES_OK: u32 = 8;
pub const STATUS_NEEDS_RESET: u32 = 0x40;
pub const STATUS_FAILED: u32 = 0x80;
/// InterruptStatus bits.
pub const INT_USED_BUFFER: u32 = 1;
pub const INT_CONFIG: u32 = 2;

/// Register offsets.
pub mod reg {
    pub const MAGIC: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    pub const CONFIG: u64 = 0x100;
}

/// Most queues a device has (virtio-vsock: receive, transmit, event).
pub const QUEUES: usize = 3;

/// Queues a device of type `device_id` has: virtio-net without a control queue: receive and
/// transmit; virtio-vsock: receive, transmit and event (its driver sets up all three).
pub const fn queues_of(device_id: u32) -> usize {
    match device_id {
        DEVICE_VSOCK => 3,
        _ => 2,
    }
}
/// Bytes of device configuration space a device may have.
pub const CONFIG_MAX: usize = 16;

/// A queue as the driver configures it, and once ready, its checked rings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueConfig {
    pub num: u16,
    pub desc: u64,
    pub driver: u64,
    pub device: u64,
    pub ring: Option<Ring>,
}

/// What a register write asks of the device besides the register itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    /// QueueNotify: the driver made buffers available in queue `n`.
    Notify(u16),
    /// Something the owner must hear about now: an interrupt (a device error).
    Interrupt,
}

/// One device's transport state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transport {
    pub device_id: u32,
    pub features: u64,
    pub config: [u8; CONFIG_MAX],
    pub config_len: usize,
    device_features_sel: u32,
    driver_features_sel: u32,
    pub driver_features: u64,
    queue_sel: u32,
    pub queues: [QueueConfig; QUEUES],
    pub interrupt_status: u32,
    pub status: u32,
    /// The last error, for reports and tests.
    pub error: Option<QueueError>,
}

impl Transport {
    /// A reset device of type `device_id` offering `features`, with configuration `config`.
    pub fn new(device_id: u32, features: u64, config: &[u8]) -> Self {
        let mut bytes = [0; CONFIG_MAX];
        let config_len = config.len().min(CONFIG_MAX);
        bytes[..config_len].copy_from_slice(&config[..config_len]);
        Transport {
            device_id,
            features,
            config: bytes,
            config_len,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            queues: [QueueConfig::default(); QUEUES],
            interrupt_status: 0,
            status: 0,
            error: None,
        }
    }

    /// Back to the state after power-on (Status = 0, or the owner restarting).
    pub fn reset(&mut self) {
        *self = Transport::new(self.device_id, self.features, &self.config[..self.config_len]);
    }

    /// Whether the driver runs the device (DRIVER_OK) and it has had no error.
    pub fn live(&self) -> bool {
        self.status & (STATUS_DRIVER_OK | STATUS_NEEDS_RESET | STATUS_FAILED) == STATUS_DRIVER_OK
    }

    /// The ready ring of queue `n`, if the device is live.
    pub fn ring(&mut self, n: usize) -> Option<&mut Ring> {
        if !self.live() {
            return None;
        }
        self.queues.get_mut(n)?.ring.as_mut()
    }

    /// Marks the device broken (NEEDS_RESET) after `error`; the caller raises its interrupt.
    pub fn fail(&mut self, error: QueueError) {
        self.error = Some(error);
        self.status |= STATUS_NEEDS_RESET;
        self.interrupt_status |= INT_CONFIG;
    }

    fn selected(&mut self) -> Option<&mut QueueConfig> {
        let count = queues_of(self.device_id);
        self.queues.get_mut(self.queue_sel as usize).filter(|_| (self.queue_sel as usize) < count)
    }

    /// A load of `size` bytes at `offset`.
    pub fn read(&self, offset: u64, size: u8) -> u64 {
        if offset >= reg::CONFIG {
            return self.read_config(offset - reg::CONFIG, size);
        }
        if size != 4 {
            return 0; // Registers are 32-bit only (§4.2.2.2).
        }
        let value = match offset {
            reg::MAGIC => MAGIC,
            reg::VERSION => 2,
            reg::DEVICE_ID => self.device_id,
            reg::VENDOR_ID => VENDOR,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.features as u32,
                1 => (self.features >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX if (self.queue_sel as usize) < queues_of(self.device_id) => {
                u32::from(QUEUE_MAX)
            }
            reg::QUEUE_READY => {
                self.queues.get(self.queue_sel as usize).map_or(0, |q| u32::from(q.ring.is_some()))
            }
            reg::INTERRUPT_STATUS => self.interrupt_status,
            reg::STATUS => self.status,
            reg::CONFIG_GENERATION => 0,
            _ => 0,
        };
        u64::from(value)
    }

    fn read_config(&self, offset: u64, size: u8) -> u64 {
        let Ok(start) = usize::try_from(offset) else { return 0 };
        let mut value = 0u64;
        for i in (0..usize::from(size.min(8))).rev() {
            let byte = start.checked_add(i).filter(|&b| b < self.config_len).map_or(0, |b| self.config[b]);
            value = value << 8 | u64::from(byte);
        }
        value
    }

    /// A store of `value` (`size` bytes) at `offset`; `owner` is the partition whose memory the
    /// queues must lie in.
    pub fn write(&mut self, owner: Owner<'_>, offset: u64, size: u8, value: u64) -> Effect {
        if offset >= reg::CONFIG || size != 4 {
            return Effect::None; // The configuration is read-only; registers are 32-bit only.
        }
        let value = value as u32;
        let high = |old: u64| (old & 0xffff_ffff) | u64::from(value) << 32;
        let low = |old: u64| (old & !0xffff_ffff) | u64::from(value);
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::DRIVER_FEATURES if self.status & STATUS_FEATURES_OK == 0 => match self.driver_features_sel {
                0 => self.driver_features = low(self.driver_features),
                1 => self.driver_features = high(self.driver_features),
                _ => {}
            },
            reg::QUEUE_SEL => self.queue_sel = value,
            reg::QUEUE_NUM => self.configure(|q| q.num = value.min(u32::from(u16::MAX)) as u16),
            reg::QUEUE_DESC_LOW => self.configure(|q| q.desc = low(q.desc)),
            reg::QUEUE_DESC_HIGH => self.configure(|q| q.desc = high(q.desc)),
            reg::QUEUE_DRIVER_LOW => self.configure(|q| q.driver = low(q.driver)),
            reg::QUEUE_DRIVER_HIGH => self.configure(|q| q.driver = high(q.driver)),
            reg::QUEUE_DEVICE_LOW => self.configure(|q| q.device = low(q.device)),
            reg::QUEUE_DEVICE_HIGH => self.configure(|q| q.device = high(q.device)),
            reg::QUEUE_READY => return self.queue_ready(owner, value),
            reg::QUEUE_NOTIFY if self.live() && (value as usize) < queues_of(self.device_id) => {
                return Effect::Notify(value as u16);
            }
            reg::INTERRUPT_ACK => self.interrupt_status &= !value,
            reg::STATUS => self.set_status(value),
            _ => {}
        }
        Effect::None
    }

    /// Changes the selected queue's configuration, which only a queue not yet ready takes.
    fn configure(&mut self, change: impl FnOnce(&mut QueueConfig)) {
        if let Some(q) = self.selected().filter(|q| q.ring.is_none()) {
            change(q);
        }
    }

    fn queue_ready(&mut self, owner: Owner<'_>, value: u32) -> Effect {
        let Some(q) = self.selected() else { return Effect::None };
        if value == 0 {
            q.ring = None;
            return Effect::None;
        }
        if q.ring.is_some() {
            return Effect::None;
        }
        match Ring::new(owner, q.num, q.desc, q.driver, q.device) {
            Ok(ring) => {
                q.ring = Some(ring);
                Effect::None
            }
            Err(e) => {
                self.fail(e);
                Effect::Interrupt
            }
        }
    }

    fn set_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let mut value = value & !STATUS_NEEDS_RESET;
        if value & STATUS_FEATURES_OK != 0 && self.status & STATUS_FEATURES_OK == 0 {
            // The driver may only accept what was offered, and must speak virtio 1.
            let ok = self.driver_features & !self.features == 0 && self.driver_features & F_VERSION_1 != 0;
            if !ok {
                value &= !STATUS_FEATURES_OK;
            }
        }
        self.status = value | (self.status & STATUS_NEEDS_RESET);
    }
}
