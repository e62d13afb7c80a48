// Encodings and reported settings (policy/pg/settings.ts), as test/gateways/postgres/protocol-attacks
// and connection tests meet them through a real database.
import { describe, expect, it } from 'vitest';
import { clientEncodingProblem, reportedSettingProblem } from '../../../service/policy/pg/settings.js';

describe('client encodings', () => {
  it('accepts UTF8 spellings and SQL_ASCII, refuses the rest', () => {
    for (const e of ['UTF8', 'utf-8', 'Unicode', 'SQL_ASCII']) expect(clientEncodingProblem(e), e).toBeNull();
    for (const e of ['SJIS', 'LATIN1', 'BIG5'])
      expect(clientEncodingProblem(e), e).toMatch(/speaks UTF8 only/);
  });
});

describe('reported settings', () => {
  it('closes when the classifier’s assumptions move', () => {
    expect(reportedSettingProblem('standard_conforming_strings', 'off', 'write', false)).toMatchObject({
      sqlstate: 'featureNotSupported',
      why: 'standard_conforming_strings turned off',
    });
    expect(reportedSettingProblem('client_encoding', 'SJIS', 'write', false)).toMatchObject({
      why: 'client_encoding other than UTF8',
    });
    expect(reportedSettingProblem('client_encoding', 'UTF8', 'write', false)).toBeNull();
  });

  it('under read, the read-only guard must stay on and the identity must not change after startup', () => {
    expect(reportedSettingProblem('default_transaction_read_only', 'off', 'read', true)).toMatchObject({
      sqlstate: 'insufficientPrivilege',
      message:
        'hoop: default_transaction_read_only changed to off in a read-only session; the connection was closed',
    });
    expect(reportedSettingProblem('default_transaction_read_only', 'on', 'read', false)).toBeNull();
    expect(reportedSettingProblem('session_authorization', 'app_user', 'read', true)).toBeNull();
    expect(reportedSettingProblem('session_authorization', 'postgres', 'read', false)).toMatchObject({
      why: 'session_authorization changed under access read',
    });
    expect(reportedSettingProblem('default_transaction_read_only', 'off', 'write', false)).toBeNull();
  });
});
