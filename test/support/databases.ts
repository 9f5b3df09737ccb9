/** Databases the run created, dropped by the root hook when the run ends. */
export const createdDatabases = new Set<string>();
