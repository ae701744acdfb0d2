//! The UDP receive loop: batched receives (`recvmmsg`) into preallocated buffers, packed into
//! pooled packet batches and handed to the processing workers. It only receives and hands on.
//!
//! Allocation policy: the receive buffers are allocated once; packet batches come from a pool
//! that the workers return them to, so a steady stream allocates nothing per datagram. Every
//! datagram is charged to the [`MemoryBudget`] before it is handed on; when the budget is
//! exhausted the datagram is dropped and counted (`dropped_total{reason="buffer_full"}`).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, recvmmsg, setsockopt, sockopt};
use socket2::{Domain, Protocol, Socket, Type};

use crate::memory::MemoryBudget;
use crate::telemetry::{Counters, DropReason, RateLimit, RejectReason};

/// Datagrams fetched per `recvmmsg` call.
pub const RECV_BATCH: usize = 64;

/// How often a blocked receive wakes up to check for shutdown.
const WAKE_INTERVAL: Duration = Duration::from_millis(100);

/// Longest time spent draining the socket's queue after the stop flag is set.
const DRAIN_LIMIT: Duration = Duration::from_millis(250);

/// Largest packet-batch capacity returned to the pool (bigger ones are freed).
const POOLED_CAPACITY: usize = 128 * 1024;

/// Packet batches kept in the pool.
const POOL_SIZE: usize = 32;

/// Datagrams received together, packed back to back, with the time they were received.
#[derive(Debug, Default)]
pub struct PacketBatch {
    data: Vec<u8>,
    ends: Vec<usize>,
    /// When the `recvmmsg` call that filled this batch returned.
    pub received_at: Option<Instant>,
    /// Bytes charged to the memory budget for this batch's unused capacity (a pooled batch
    /// may be much larger than the few datagrams it carries); released when it is returned.
    pub overhead: usize,
}

impl PacketBatch {
    /// Appends one datagram.
    pub fn push(&mut self, datagram: &[u8]) {
        self.data.extend_from_slice(datagram);
        self.ends.push(self.data.len());
    }

    /// The datagrams, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let d = &self.data[start..end];
            start = end;
            d
        })
    }

    /// Number of datagrams.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether it holds no datagram.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.received_at = None;
        self.overhead = 0;
    }

    /// Memory held beyond the datagrams themselves.
    fn unused_capacity(&self) -> usize {
        (self.data.capacity() - self.data.len())
            + self.ends.capacity() * std::mem::size_of::<usize>()
    }
}

/// Packet batches waiting to be reused.
#[derive(Debug, Default)]
pub struct PacketPool {
    free: Mutex<Vec<PacketBatch>>,
}

impl PacketPool {
    /// Takes an empty batch (from the pool, or a new one).
    pub fn take(&self) -> PacketBatch {
        self.free
            .lock()
            .ok()
            .and_then(|mut f| f.pop())
            .unwrap_or_default()
    }

    /// Returns a batch for reuse.
    pub fn give(&self, mut batch: PacketBatch) {
        if batch.data.capacity() > POOLED_CAPACITY {
            return;
        }
        batch.clear();
        if let Ok(mut free) = self.free.lock()
            && free.len() < POOL_SIZE
        {
            free.push(batch);
        }
    }
}

/// Opens the UDP socket with the requested receive buffer and a wake-up timeout.
///
/// `SO_RCVBUFFORCE` is tried first (it works as root and passes `net.core.rmem_max`), then
/// `SO_RCVBUF`; the size the kernel granted is logged.
pub fn open_socket(bind: SocketAddr, receive_buffer_bytes: usize) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    if setsockopt(&socket, sockopt::RcvBufForce, &receive_buffer_bytes).is_err() {
        socket.set_recv_buffer_size(receive_buffer_bytes)?;
    }
    socket.set_read_timeout(Some(WAKE_INTERVAL))?;
    socket.bind(&bind.into())?;
    let granted = socket.recv_buffer_size().unwrap_or(0);
    tracing::info!(
        requested = receive_buffer_bytes,
        granted,
        "UDP receive buffer"
    );
    Ok(socket.into())
}

/// Everything the receive loop needs.
pub struct Listener {
    /// The bound socket.
    pub socket: UdpSocket,
    /// One channel per worker; datagrams are spread round-robin.
    pub workers: Vec<SyncSender<PacketBatch>>,
    /// Where empty batches come back from.
    pub pool: Arc<PacketPool>,
    /// The memory bound.
    pub budget: Arc<MemoryBudget>,
    /// Counters.
    pub counters: Arc<Counters>,
    /// Set to stop receiving (the socket is drained first).
    pub stop: Arc<AtomicBool>,
    /// Largest document accepted; longer datagrams are rejected here, before any copy.
    pub max_datagram_bytes: usize,
}

impl Listener {
    /// Runs the receive loop on the current thread until `stop` is set and the socket's queue
    /// is drained; then drops the worker channels so the workers finish.
    pub fn run(self) {
        let slot = self.max_datagram_bytes + 1;
        let mut buffers: Vec<Vec<u8>> = (0..RECV_BATCH).map(|_| vec![0u8; slot]).collect();
        let mut headers = MultiHeaders::<()>::preallocate(RECV_BATCH, None);
        let mut lengths = [0usize; RECV_BATCH];
        let mut next_worker = 0usize;
        let full_log = RateLimit::new(Duration::from_secs(10));
        let fd = self.socket.as_raw_fd();
        let mut drain_until: Option<Instant> = None;
        loop {
            let stopping = self.stop.load(Ordering::Acquire);
            if stopping {
                // Drain what the kernel already queued, but not forever under a steady stream.
                let until = *drain_until.get_or_insert_with(|| Instant::now() + DRAIN_LIMIT);
                if Instant::now() >= until {
                    break;
                }
            }
            let flags = if stopping {
                MsgFlags::MSG_DONTWAIT
            } else {
                MsgFlags::MSG_WAITFORONE
            };
            let count = {
                let mut slices: Vec<[io::IoSliceMut<'_>; 1]> = buffers
                    .iter_mut()
                    .map(|b| [io::IoSliceMut::new(b.as_mut_slice())])
                    .collect();
                match recvmmsg(fd, &mut headers, slices.iter_mut(), flags, None) {
                    Ok(results) => {
                        let mut n = 0;
                        for (slot_len, msg) in lengths.iter_mut().zip(results) {
                            *slot_len = msg.bytes;
                            n += 1;
                        }
                        n
                    }
                    Err(Errno::EAGAIN | Errno::EINTR) if !stopping => continue,
                    Err(Errno::EAGAIN) => break,
                    Err(Errno::EINTR) => continue,
                    Err(error) => {
                        tracing::error!(%error, "UDP receive failed");
                        if stopping {
                            break;
                        }
                        std::thread::sleep(WAKE_INTERVAL);
                        continue;
                    }
                }
            };
            if count == 0 {
                if stopping {
                    break;
                }
                continue;
            }
            let received_at = Instant::now();
            let mut batch = self.pool.take();
            batch.received_at = Some(received_at);
            let mut charged = 0usize;
            let mut dropped = 0u64;
            for (buffer, &len) in buffers.iter().zip(&lengths[..count]) {
                if len > self.max_datagram_bytes {
                    self.counters.reject(RejectReason::Oversize);
                    crate::processor::log_reject(RejectReason::Oversize, &"datagram too large");
                    continue;
                }
                let charge = crate::memory::admission_charge(len);
                if self.budget.try_acquire(charge) {
                    charged += charge;
                    batch.push(&buffer[..len]);
                } else {
                    dropped += 1;
                }
            }
            self.counters
                .received
                .fetch_add(count as u64, Ordering::Relaxed);
            if !batch.is_empty() {
                batch.overhead = batch.unused_capacity();
                self.budget.force_acquire(batch.overhead);
                charged += batch.overhead;
                let worker = &self.workers[next_worker % self.workers.len()];
                next_worker = next_worker.wrapping_add(1);
                match worker.try_send(batch) {
                    Ok(()) => {}
                    Err(TrySendError::Full(batch) | TrySendError::Disconnected(batch)) => {
                        dropped += batch.len() as u64;
                        self.budget.release(charged);
                        self.pool.give(batch);
                    }
                }
            } else {
                self.pool.give(batch);
            }
            if dropped > 0 {
                self.counters
                    .drop_documents(DropReason::BufferFull, dropped);
                if let Some(suppressed) = full_log.check() {
                    tracing::warn!(
                        dropped,
                        suppressed_lines = suppressed,
                        buffered_bytes = self.budget.used(),
                        limit_bytes = self.budget.limit(),
                        "memory buffer full: dropping datagrams (raise --buffer-memory-mb, or check the collector and spool)"
                    );
                }
            }
        }
        tracing::debug!("UDP listener stopped");
    }
}

/// The physical limit, for benchmarks: the same batched receive on the same socket settings,
/// counting datagrams and doing nothing else, until `stop` is set and the queue is empty.
/// Returns the datagrams received.
pub fn bare_receive_loop(socket: &UdpSocket, stop: &AtomicBool) -> u64 {
    let mut buffers: Vec<Vec<u8>> = (0..RECV_BATCH)
        .map(|_| vec![0u8; roentgen_sdk::model::MAX_DOCUMENT_BYTES + 65])
        .collect();
    let mut headers = MultiHeaders::<()>::preallocate(RECV_BATCH, None);
    let fd = socket.as_raw_fd();
    let mut total = 0u64;
    loop {
        let mut slices: Vec<[io::IoSliceMut<'_>; 1]> = buffers
            .iter_mut()
            .map(|b| [io::IoSliceMut::new(b.as_mut_slice())])
            .collect();
        match recvmmsg(
            fd,
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        ) {
            Ok(results) => total += results.count() as u64,
            Err(_) if stop.load(Ordering::Acquire) => return total,
            Err(_) => {}
        }
    }
}

/// Receives on `workers` channels' far side: convenience alias for worker code.
pub type PacketReceiver = Receiver<PacketBatch>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_batch_keeps_datagrams_apart() {
        let pool = PacketPool::default();
        let mut b = pool.take();
        b.push(b"one");
        b.push(b"");
        b.push(b"three");
        let all: Vec<&[u8]> = b.iter().collect();
        assert_eq!(all, vec![&b"one"[..], b"", b"three"]);
        pool.give(b);
        let again = pool.take();
        assert!(again.is_empty());
        assert!(again.data.capacity() >= 8);
    }
}
