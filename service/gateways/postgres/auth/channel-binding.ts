// tls-server-end-point channel binding (RFC 5929 §4): the hash of the server's certificate, with the
// hash function of the certificate's signature algorithm (MD5 and SHA-1 upgraded to SHA-256), which is
// what libpq computes for SCRAM-SHA-256-PLUS.
import { createHash, X509Certificate } from 'node:crypto';

// DER of the signature AlgorithmIdentifier OIDs we know, hex, → hash to use.
const HASH_BY_SIGNATURE_OID: Record<string, string> = {
  '2a864886f70d010104': 'sha256', // md5WithRSAEncryption (upgraded)
  '2a864886f70d010105': 'sha256', // sha1WithRSAEncryption (upgraded)
  '2a864886f70d01010b': 'sha256', // sha256WithRSAEncryption
  '2a864886f70d01010c': 'sha384', // sha384WithRSAEncryption
  '2a864886f70d01010d': 'sha512', // sha512WithRSAEncryption
  '2a8648ce3d0401': 'sha256', // ecdsa-with-SHA1 (upgraded)
  '2a8648ce3d040302': 'sha256', // ecdsa-with-SHA256
  '2a8648ce3d040303': 'sha384', // ecdsa-with-SHA384
  '2a8648ce3d040304': 'sha512', // ecdsa-with-SHA512
};

interface DerItem {
  tag: number;
  start: number; // content start
  end: number; // content end
}

function readDer(buf: Buffer, pos: number): DerItem | null {
  if (pos + 2 > buf.length) return null;
  const tag = buf[pos]!;
  let len = buf[pos + 1]!;
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > buf.length) return null;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!;
    start += n;
  }
  if (start + len > buf.length) return null;
  return { tag, start, end: start + len };
}

/** The hash algorithm for tls-server-end-point, or null when the signature algorithm has no single
 *  hash (Ed25519, RSA-PSS): then the broker simply does not offer SCRAM-SHA-256-PLUS. */
export function endPointHashAlgorithm(certDer: Buffer): string | null {
  const cert = readDer(certDer, 0);
  if (cert?.tag !== 0x30) return null;
  const tbs = readDer(certDer, cert.start);
  if (!tbs) return null;
  const alg = readDer(certDer, tbs.end);
  if (alg?.tag !== 0x30) return null;
  const oid = readDer(certDer, alg.start);
  if (oid?.tag !== 0x06) return null;
  return HASH_BY_SIGNATURE_OID[certDer.toString('hex', oid.start, oid.end)] ?? null;
}

/** Channel-binding data for the first certificate of a PEM chain, or null when it cannot be offered. */
export function tlsServerEndPoint(certPem: string): Buffer | null {
  let der: Buffer;
  try {
    der = new X509Certificate(certPem).raw;
  } catch {
    return null;
  }
  const alg = endPointHashAlgorithm(der);
  return alg ? createHash(alg).update(der).digest() : null;
}

/** The same, for a peer certificate already in DER (upstream side). */
export function tlsServerEndPointFromDer(der: Buffer): Buffer | null {
  const alg = endPointHashAlgorithm(der);
  return alg ? createHash(alg).update(der).digest() : null;
}
