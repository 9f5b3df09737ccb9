/** ssh2's crypto module (CommonJS), for whether its OpenSSL binding was loaded (agent/native-addon.ts). */
declare module 'ssh2/lib/protocol/crypto.js' {
  const sshCrypto: { bindingAvailable: boolean };
  export default sshCrypto;
}
