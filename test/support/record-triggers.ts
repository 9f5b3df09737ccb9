import type { Pool, RowDataPacket } from 'mysql2/promise';

/**
 * Runs `change` with the triggers of `tables` dropped, then puts them back as they were: what
 * someone with root on the database can do, to show that a change made behind the triggers is
 * still found.
 */
export async function behindTheTriggers<T>(db: Pool, tables: string[], change: () => Promise<T>): Promise<T> {
  const [triggers] = await db.query<RowDataPacket[]>(
    'SELECT TRIGGER_NAME AS name FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE IN (?)', [tables],
  );
  const definitions: string[] = [];
  for (const { name } of triggers) {
    const [[shown]] = (await db.query(`SHOW CREATE TRIGGER \`${name}\``)) as unknown as [Record<string, string>[]];
    definitions.push(shown!['SQL Original Statement']!);
    await db.query(`DROP TRIGGER \`${name}\``);
  }
  try {
    return await change();
  } finally {
    for (const definition of definitions) await db.query(definition);
  }
}
