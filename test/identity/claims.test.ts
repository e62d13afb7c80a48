import { describe, expect, it } from 'vitest';
import { IDENTITY_CLAIMS, pickIdentity } from '../../service/identity/claims.js';
import { defaultGithubClaims } from '../fixtures/oidc-issuer.js';

describe('pickIdentity', () => {
  it('keeps the claims a reader needs, only those present, and drops the rest', () => {
    const claims = {
      ...defaultGithubClaims('https://issuer.example', 'aud', new Date(0), 300),
      environment: 'prod',
    };
    const identity = pickIdentity({ ...claims, base_ref: null, extra: 'x' });
    expect(Object.keys(identity)).toEqual(IDENTITY_CLAIMS.filter((c) => c !== 'base_ref'));
    expect(identity).toMatchObject({
      repository: 'octo-org/octo-repo',
      repository_id: '123456',
      ref_protected: 'true',
      head_ref: '',
      iss: 'https://issuer.example',
    });
    for (const dropped of [
      'aud',
      'exp',
      'iat',
      'nbf',
      'jti',
      'extra',
      'workflow_sha',
      'repository_visibility',
    ]) {
      expect(identity).not.toHaveProperty(dropped);
    }
  });

  it('returns an empty identity for a token with none of them', () => {
    expect(pickIdentity({ aud: 'x' })).toEqual({});
  });
});
