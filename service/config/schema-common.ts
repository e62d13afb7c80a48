// Schema parts shared by the config's sections and the target kinds (targets/*.ts).
import Type, { type Static } from 'typebox';

export const SecretRef = Type.Union(
  [
    Type.Object(
      { env: Type.String({ minLength: 1, pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }) },
      { additionalProperties: false },
    ),
    Type.Object({ file: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
  ],
  { description: 'a secret by reference: {env: NAME} or {file: PATH}; inline secrets are refused' },
);
export type SecretRef = Static<typeof SecretRef>;

/** "90s", "15m", "1h", "1h30m" */
export const Duration = Type.String({ pattern: '^([0-9]+h)?([0-9]+m)?([0-9]+s)?$', minLength: 2 });

export const Port = Type.Integer({ minimum: 0, maximum: 65535 });
/** A target's name: also its PostgreSQL database name, ssh Host alias and kubeconfig context. */
export const TargetName = Type.String({ minLength: 1, pattern: '^[a-z0-9][a-z0-9_-]*$' });
