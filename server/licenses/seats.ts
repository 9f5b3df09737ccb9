import type { Pool, RowDataPacket } from 'mysql2/promise';
import { inTransaction, licenseEvents } from './repository.js';

/** A machine that holds a seat, as a person recognises it. */
export interface MachineInUse {
  activationId: number;
  hostname: string | null;
  platform: string | null;
  lastSeenAt: Date | null;
}

export type SeatChange =
  | { changed: true; from: number; to: number }
  | { changed: false; reason: 'not-found' }
  /** Fewer seats than machines in use: these machines must be deactivated first (some of them). */
  | { changed: false; reason: 'machines-in-use'; inUse: MachineInUse[] };

/** How a machine is named in a refusal: its host name where known, else its number. */
export function machineName(m: MachineInUse): string {
  return m.hostname ? `${m.hostname} (machine ${m.activationId})` : `machine ${m.activationId}`;
}

/**
 * Sets a permanent license's seats (the key stays the same). Never below the machines that use it
 * now: the seat count would be a lie, so the caller is told which machines to deactivate first.
 * `customerId`: only a license of this customer (MyAccount); staff pass null. Recorded in the
 * license's history with `why`.
 */
export async function setSeats(db: Pool, licenseId: number, seats: number, options: { customerId: number | null; why: string }, now = new Date()): Promise<SeatChange> {
  return inTransaction(db, async (tx) => {
    const [rows] = await tx.execute<RowDataPacket[]>(
      "SELECT id, seats, customer_id FROM licenses WHERE id = ? AND kind = 'permanent' FOR UPDATE",
      [licenseId],
    );
    const license = rows[0] as { id: number; seats: number; customer_id: number | null } | undefined;
    if (!license || (options.customerId !== null && license.customer_id !== options.customerId)) return { changed: false, reason: 'not-found' };
    const [machines] = await tx.execute<RowDataPacket[]>(
      'SELECT id, hostname, platform, last_validated_at FROM activations WHERE license_id = ? AND active ORDER BY last_validated_at, id',
      [licenseId],
    );
    if (seats < machines.length) {
      return {
        changed: false, reason: 'machines-in-use',
        inUse: machines.map((m) => ({ activationId: m.id, hostname: m.hostname, platform: m.platform, lastSeenAt: m.last_validated_at })),
      };
    }
    if (seats === license.seats) return { changed: true, from: seats, to: seats };
    await tx.execute('UPDATE licenses SET seats = ? WHERE id = ?', [seats, licenseId]);
    await licenseEvents.record(tx, licenseId, 'seats_changed', null, null, now, `${license.seats} → ${seats} (${options.why})`);
    return { changed: true, from: license.seats, to: seats };
  });
}
