/**
 * The numbers that make transfers fast and robust, one table each, with why each is what it is.
 * Figures were measured with `npm run bench` on the 2-core development machine (loopback sshd,
 * OpenSSH 9.2); see README "Transfer benchmark".
 */

/** How one file moves: request size and how many requests are in flight at once. */
export const PIPELINE = {
  /**
   * Bytes per SFTP read/write request. 32 KiB is what every SFTP server must accept (RFC draft:
   * 32768 is the guaranteed minimum), and SSH channel packets are 32 KiB (OpenSSH's and ssh2's):
   * a bigger request is split across packets anyway. 64 KiB measured no faster on loopback and is
   * refused by some servers. Writes carry a little less, so that data and header fit one packet
   * (RemoteFs.writeChunkBytes: 32,739 bytes with OpenSSH; uploads measured 7 % less CPU, median
   * of 6), and so do reads, so that each answer fits one packet (RemoteFs.readChunkBytes: 32,755
   * bytes; a 512 MiB download measured 8 % faster, median of 8 paired runs on 2026-11-30; an
   * earlier, unpaired run had measured odd sizes 10 % slower).
   */
  chunkBytes: 32 * 1024,
  /**
   * Requests in flight per file: 64 × 32 KiB = 2 MiB, which covers ssh2's 2 MiB channel window, so
   * the pipe never waits on round trips. 16 was 30-40 % slower for large files; 128 gained nothing.
   */
  requestsInFlight: 64,
  /**
   * Requests in flight per file at most, for a server whose `limits@openssh.com` asks for smaller
   * reads or writes than `chunkBytes`: as many bytes stay in flight (2 MiB) down to 8 KiB
   * requests; below that, fewer bytes rather than ever more requests for the server to queue.
   */
  maxRequestsInFlight: 256,
  /** Local reads for uploads are made in blocks of this many chunks (fewer thread-pool trips). */
  readBlockChunks: 8,
  /**
   * Files up to this size are read whole before their upload starts, and written whole (part
   * file, times, rename) after their download, synchronously: for small files the thread pool's
   * round trips cost more than the system calls (2,000 × 16 KiB: uploads spent a third of their
   * time on open/read/close hops; downloads measured 20 % faster on tmpfs, the same on ext4).
   */
  wholeReadBytes: 256 * 1024,
  /**
   * `--resume` verifies a part file whole, as SHA-256 of blocks this long on both sides: the first
   * block that differs is where the transfer continues. 1 MiB: a mismatch costs at most 1 MiB
   * sent again, and a 1 GiB part file is 1,024 digests (32 KiB) in one check-file answer.
   */
  resumeBlockBytes: 1024 * 1024,
} as const;

/** How many files at once, and over how many SSH connections. */
export const CONCURRENCY = {
  /**
   * Files in flight at once (`--parallel`). Small files are bound by round trips (open; data,
   * attributes and close together; rename), so many files must be in flight to fill the pipe.
   * Measured for 2,000 × 16 KiB over one connection: 8 was clearly slower, 32 and 64 about equal
   * and best; 32 keeps the memory per run small (at most 32 files × 2 MiB of requests).
   */
  defaultParallel: 32,
  maxParallel: 64,
  /**
   * SSH connections the parallel files share (`--connections`). On the 2-core machine ferry's one
   * thread (ssh2's packet handling and crypto) is the limit, and sshd already runs its crypto and
   * its SFTP server in two processes per connection: 2, 4 and 8 connections were each slower than
   * one, and after TCP_NODELAY (2026-11-30) 2 connections measured the same as one for 2,000 small
   * files (0.83 s against 0.84 s, median of 3): every extra connection costs a handshake and
   * competes for the same two cores. On more cores or a far server, more connections pay: raise
   * it there.
   */
  defaultConnections: 1,
  maxConnections: 16,
} as const;

/** How a direct connection receives (connect.ts, ringSocket). */
export const RECEIVE = {
  /** Bytes asked of the kernel per socket read: Node's own default. */
  readBytes: 64 * 1024,
  /**
   * The ring the reads go into, reused round and round: 64 reads of history, far more than any
   * view of received bytes lives (those that would are copied), and 4 MiB of memory per connection.
   * 16 MiB measured no faster.
   */
  ringBytes: 4 * 1024 * 1024,
} as const;

/** Retrying after a lost connection: bounded, with exponential backoff. */
export const RETRY = {
  /** Attempts after the first (`--retries`, FERRY_RETRIES). Five cover about 15 s of outage. */
  defaultRetries: 5,
  /** First wait; doubled on each further attempt, up to `maxDelayMs`. */
  baseDelayMs: 250,
  maxDelayMs: 8_000,
} as const;

/** The SSH connection itself. */
export const SSH = {
  /**
   * Ciphers, best first. AES-GCM uses AES-NI through OpenSSL and needs no separate MAC: on this
   * CPU it measured fastest in ssh2 and on the sshd side. chacha20-poly1305 is close behind (for
   * CPUs without AES-NI), CTR modes are for old servers.
   */
  ciphers: ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes128-ctr', 'aes192-ctr', 'aes256-ctr'],
  /**
   * Seconds an SFTP request, and the connection's handshake and login (prompts not counted), may
   * take before the server counts as having stopped answering (`--timeout`, FERRY_TIMEOUT,
   * `transfers.timeout`). Generous for a loaded server; a stalled one is a lost connection then.
   */
  defaultTimeoutSeconds: 30,
  maxTimeoutSeconds: 3600,
  /**
   * The request watchdog (connect.ts) looks this often at most, and at least four times per
   * deadline: a stall is found within the deadline plus one look.
   */
  watchdogMaxTickMs: 1_000,
  /** A silent peer is declared gone after interval × count. */
  keepaliveIntervalMs: 5_000,
  keepaliveCountMax: 3,
  defaultPort: 22,
} as const;

/** Progress output. */
export const PROGRESS = {
  /** `--json` progress lines per file at most this often. */
  jsonIntervalMs: 1_000,
  /** Terminal bar redraws. */
  barIntervalMs: 200,
  /** `--progress` off a terminal: a running totals line this often (a log shows a large file moving). */
  linesIntervalMs: 2_000,
} as const;

/** Names of part files: hidden, next to the final name, recognisable. */
export const PART_SUFFIX = '.ferry-part';
