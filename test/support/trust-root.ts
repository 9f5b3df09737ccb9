import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './temp.js';
import { certifySigningKey, generateRootKey, rootPublicPem, type SignedStatement, type SigningKey } from '../../licensing/index.js';

/**
 * The one trust root of a test run. Every test server's data folder is seeded with it (testEnv),
 * and every agent a test starts trusts it: FERRY_TRUST_ROOT is set in this process's environment
 * (children that inherit it get it) and by the fixtures that build an agent's environment from
 * scratch. A test that needs a deployment of another root gives its server a fresh data folder.
 */
const dir = tempDir('ferry-test-root-');
const pair = generateRootKey();

export const TEST_ROOT = {
  publicFile: join(dir, 'root-public.pem'),
  privateFile: join(dir, 'root-key.pem'),
  publicKey: pair.publicKey,
  privateKey: pair.privateKey,
};

writeFileSync(TEST_ROOT.publicFile, rootPublicPem(pair.publicKey), { mode: 0o644 });
writeFileSync(TEST_ROOT.privateFile, pair.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });

process.env.FERRY_TRUST_ROOT = TEST_ROOT.publicFile;

/** Puts the test root into a server data folder, where the server looks for its root. */
export function seedTestRoot(dataDir: string): void {
  mkdirSync(join(dataDir, 'root'), { recursive: true, mode: 0o700 });
  copyFileSync(TEST_ROOT.publicFile, join(dataDir, 'root', 'root-public.pem'));
  copyFileSync(TEST_ROOT.privateFile, join(dataDir, 'root', 'root-key.pem'));
}

/** The test root's certificate of a key, as a test server would serve it. */
export function testCertificate(key: Pick<SigningKey, 'kid' | 'publicKey'>, notBefore = 0): SignedStatement {
  return certifySigningKey(TEST_ROOT.privateKey, key, notBefore);
}
