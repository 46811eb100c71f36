import { generateKeyPairSync, sign } from 'node:crypto';
import { checkpointMessage } from '../src/audit/chain.ts';
const { privateKey } = generateKeyPairSync('ed25519');
const t = performance.now();
for (let i = 0; i < 2000; i++) sign(null, checkpointMessage(i, 'ab'.repeat(32), new Date().toISOString()), privateKey);
console.log('sign us', ((performance.now() - t) / 2).toFixed(1));
