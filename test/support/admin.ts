import assert from 'node:assert/strict';
import { request } from './http.js';

export interface IssuedLicense {
  id: number;
  key: string;
  seats: number;
}

/** Issues a permanent license through the admin API, as staff recording a sale would. */
export async function issueLicense(server: { url: string; adminToken: string }, seats: number, extra: Record<string, unknown> = {}): Promise<IssuedLicense> {
  const res = await request(`${server.url}/v1/admin/licenses`, { body: { kind: 'permanent', seats, ...extra }, token: server.adminToken });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.license;
}

export async function revokeLicense(server: { url: string; adminToken: string }, id: number): Promise<void> {
  const res = await request(`${server.url}/v1/admin/licenses/${id}/revoke`, { method: 'POST', token: server.adminToken });
  assert.equal(res.status, 200, JSON.stringify(res.body));
}
