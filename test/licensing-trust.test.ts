import assert from 'node:assert/strict';
import { stat, readFile } from 'node:fs/promises';
import {
  canonicalJson, generateRootKey, rootPublicFromPem, rootPublicPem, signStatement, TrustError, verifyStatement,
} from '../licensing/index.js';
import { loadOrCreateRoot, loadRootPrivateKey, rootPaths } from '../server/keys/root.js';
import { tempDir } from './support/temp.js';

describe('the trust root', () => {
  const root = generateRootKey();

  it('verifies what it signed and gives back the body', () => {
    const statement = signStatement(root.privateKey, 'ferry-release-manifest', { version: '1.2.3', artefacts: [] });
    const body = verifyStatement(root.publicKey, 'ferry-release-manifest', statement);
    assert.equal(body.version, '1.2.3');
  });

  it('refuses an edited payload, another root, and a statement made for another purpose', () => {
    const statement = signStatement(root.privateKey, 'ferry-signing-key', { kid: 'k1' });
    const edited = { ...statement, payload: statement.payload.replace('k1', 'k2') };
    assert.throws(() => verifyStatement(root.publicKey, 'ferry-signing-key', edited), TrustError);
    assert.throws(() => verifyStatement(generateRootKey().publicKey, 'ferry-signing-key', statement), TrustError);
    assert.throws(() => verifyStatement(root.publicKey, 'ferry-release-manifest', statement), TrustError);
    assert.throws(() => verifyStatement(root.publicKey, 'ferry-signing-key', { payload: 1 }), TrustError);
  });

  it('writes one JSON text for one value, whatever the key order', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: null } }), '{"a":{"c":null,"d":[2,{"y":2,"z":1}]},"b":1}');
  });

  it('is made once per data folder, the private half 0600 and apart from the public half', async () => {
    const dir = tempDir('ferry-root-');
    const paths = rootPaths(dir);
    const first = await loadOrCreateRoot(paths);
    const again = await loadOrCreateRoot(paths);
    assert.equal(first.generated, true);
    assert.equal(again.generated, false);
    assert.equal(again.pem, first.pem);
    assert.equal((await stat(paths.privateFile)).mode & 0o777, 0o600);
    const privateKey = await loadRootPrivateKey(paths);
    const statement = signStatement(privateKey, 'ferry-signing-key', { kid: 'x' });
    verifyStatement(rootPublicFromPem(await readFile(paths.publicFile, 'utf8')), 'ferry-signing-key', statement);
    assert.equal(rootPublicPem(rootPublicFromPem(first.pem)), first.pem);
  });

  it('says where the private half is when it is offline', async () => {
    const dir = tempDir('ferry-root-');
    await loadOrCreateRoot(rootPaths(dir));
    await assert.rejects(loadRootPrivateKey(rootPaths(dir, `${dir}/elsewhere.pem`)), /not here: bring it back/);
  });

  it('is one root when servers start together on a new data folder', async () => {
    const paths = rootPaths(tempDir('ferry-root-'));
    const roots = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateRoot(paths)));
    assert.equal(new Set(roots.map((r) => r.pem)).size, 1);
    assert.equal(roots.filter((r) => r.generated).length, 1);
  });

  it('takes the public half from FERRY_ROOT_KEY on a new server of an existing deployment', async () => {
    const deployment = rootPaths(tempDir('ferry-root-'));
    const { pem } = await loadOrCreateRoot(deployment);
    const newServer = rootPaths(tempDir('ferry-root-'), deployment.privateFile);
    const root = await loadOrCreateRoot(newServer);
    assert.equal(root.pem, pem);
    assert.equal(await readFile(newServer.publicFile, 'utf8'), pem);
  });
});
