// A GitHub App's key pair for tests (GitHub hands out PKCS#1 PEM; both forms are accepted).
import { generateKeyPairSync } from 'node:crypto';

export const APP_ID = 424242;
const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
export const APP_PRIVATE_KEY = pair.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
export const APP_PUBLIC_KEY = pair.publicKey;
