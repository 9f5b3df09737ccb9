/** ssh2 modules ferry reaches into (CommonJS): its crypto module, for whether its OpenSSL binding was loaded (agent/native-addon.ts). */
declare module 'ssh2/lib/protocol/crypto.js' {
  const sshCrypto: { bindingAvailable: boolean };
  export default sshCrypto;
}

/** ssh2's protocol helpers (CommonJS): how a finished packet is encrypted and sent (agent/transfer/direct-write.ts). */
declare module 'ssh2/lib/protocol/utils.js' {
  const protocolUtils: { sendPacket(protocol: unknown, packet: Buffer): boolean };
  export default protocolUtils;
}
