import { describe, expect, it } from 'vitest';
import { normalizeHostnames } from '../../service/tls/ca.js';
import { brokerHostnames } from '../../service/tls/hostnames.js';

describe('broker hostnames', () => {
  it('collects public_url, public_host and concrete listener hosts', () => {
    expect(
      brokerHostnames({
        public_url: 'https://hoop.example.com:8443',
        listen: {
          http: { port: 8080, host: '0.0.0.0' },
          postgres: {
            port: 6432,
            host: '10.0.0.5',
            public_host: 'pg.hoop.example.com',
            allow_cleartext_password: false,
          },
        },
      }),
    ).toEqual(['hoop.example.com', 'pg.hoop.example.com', '10.0.0.5']);
  });

  it('normalizes case, IPv6 brackets and wildcards', () => {
    expect(
      normalizeHostnames([
        'Broker.Example',
        '[::1]',
        '0:0:0:0:0:0:0:1',
        '::',
        '0.0.0.0',
        ' ',
        'broker.example',
      ]),
    ).toEqual(['broker.example', '::1']);
  });
});
