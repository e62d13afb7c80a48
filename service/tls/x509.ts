// @peculiar/x509, ready to use: its dependency tsyringe needs the reflect-metadata polyfill loaded at
// import time, and the library needs a WebCrypto provider. Import x509 from here, never directly.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as ReturnType<typeof x509.cryptoProvider.get>);

export { x509 };
