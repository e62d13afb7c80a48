// Statement kinds (plain SQL words, upper case) and the base effect of each statement node type.
//
// Kinds are what deny rules match: a rule word matches a kind when it equals it or is its first words
// (`DROP` matches `DROP TABLE`, `DROP INDEX`, …; `CREATE TABLE` matches only `CREATE TABLE`).
import type { StatementEffect } from './types.js';

export interface KindInfo {
  kind: string;
  effect: StatementEffect;
}

/** Object types as SQL words: OBJECT_FOREIGN_TABLE → "FOREIGN TABLE". */
export function objectTypeWords(objtype: unknown): string {
  if (typeof objtype !== 'string' || !objtype.startsWith('OBJECT_')) return '';
  const words = objtype.slice('OBJECT_'.length).replace(/_/g, ' ');
  return words === 'MATVIEW' ? 'MATERIALIZED VIEW' : words;
}

const fixed: Record<string, KindInfo> = {
  SelectStmt: { kind: 'SELECT', effect: 'read' },
  InsertStmt: { kind: 'INSERT', effect: 'write' },
  UpdateStmt: { kind: 'UPDATE', effect: 'write' },
  DeleteStmt: { kind: 'DELETE', effect: 'write' },
  MergeStmt: { kind: 'MERGE', effect: 'write' },
  TruncateStmt: { kind: 'TRUNCATE', effect: 'write' },
  CopyStmt: { kind: 'COPY', effect: 'read' },
  ExplainStmt: { kind: 'EXPLAIN', effect: 'read' },
  PrepareStmt: { kind: 'PREPARE', effect: 'read' },
  // EXECUTE's effect is the prepared statement's (unknown when it was not seen): see Analysis.execute.
  ExecuteStmt: { kind: 'EXECUTE', effect: 'read' },
  DeallocateStmt: { kind: 'DEALLOCATE', effect: 'session' },
  DeclareCursorStmt: { kind: 'DECLARE', effect: 'read' },
  ClosePortalStmt: { kind: 'CLOSE', effect: 'read' },
  VariableShowStmt: { kind: 'SHOW', effect: 'read' },
  ListenStmt: { kind: 'LISTEN', effect: 'session' },
  UnlistenStmt: { kind: 'UNLISTEN', effect: 'session' },
  NotifyStmt: { kind: 'NOTIFY', effect: 'write' },
  LockStmt: { kind: 'LOCK', effect: 'read' },
  DoStmt: { kind: 'DO', effect: 'write' },
  CallStmt: { kind: 'CALL', effect: 'write' },
  ConstraintsSetStmt: { kind: 'SET CONSTRAINTS', effect: 'transaction' },
  RefreshMatViewStmt: { kind: 'REFRESH MATERIALIZED VIEW', effect: 'write' },
  ClusterStmt: { kind: 'CLUSTER', effect: 'ddl' },
  ReindexStmt: { kind: 'REINDEX', effect: 'ddl' },
  CheckPointStmt: { kind: 'CHECKPOINT', effect: 'admin' },
  LoadStmt: { kind: 'LOAD', effect: 'admin' },
  AlterSystemStmt: { kind: 'ALTER SYSTEM', effect: 'admin' },
  CreateExtensionStmt: { kind: 'CREATE EXTENSION', effect: 'admin' },
  AlterExtensionStmt: { kind: 'ALTER EXTENSION', effect: 'admin' },
  AlterExtensionContentsStmt: { kind: 'ALTER EXTENSION', effect: 'admin' },
  CreateRoleStmt: { kind: 'CREATE ROLE', effect: 'admin' },
  AlterRoleStmt: { kind: 'ALTER ROLE', effect: 'admin' },
  AlterRoleSetStmt: { kind: 'ALTER ROLE', effect: 'admin' },
  DropRoleStmt: { kind: 'DROP ROLE', effect: 'admin' },
  ReassignOwnedStmt: { kind: 'REASSIGN OWNED', effect: 'admin' },
  DropOwnedStmt: { kind: 'DROP OWNED', effect: 'admin' },
  CreatedbStmt: { kind: 'CREATE DATABASE', effect: 'admin' },
  AlterDatabaseStmt: { kind: 'ALTER DATABASE', effect: 'admin' },
  AlterDatabaseSetStmt: { kind: 'ALTER DATABASE', effect: 'admin' },
  AlterDatabaseRefreshCollStmt: { kind: 'ALTER DATABASE', effect: 'admin' },
  DropdbStmt: { kind: 'DROP DATABASE', effect: 'admin' },
  CreateTableSpaceStmt: { kind: 'CREATE TABLESPACE', effect: 'admin' },
  DropTableSpaceStmt: { kind: 'DROP TABLESPACE', effect: 'admin' },
  AlterTableSpaceOptionsStmt: { kind: 'ALTER TABLESPACE', effect: 'admin' },
  AlterTableMoveAllStmt: { kind: 'ALTER TABLE', effect: 'admin' },
  CreateSubscriptionStmt: { kind: 'CREATE SUBSCRIPTION', effect: 'admin' },
  AlterSubscriptionStmt: { kind: 'ALTER SUBSCRIPTION', effect: 'admin' },
  DropSubscriptionStmt: { kind: 'DROP SUBSCRIPTION', effect: 'admin' },
  CreatePublicationStmt: { kind: 'CREATE PUBLICATION', effect: 'admin' },
  AlterPublicationStmt: { kind: 'ALTER PUBLICATION', effect: 'admin' },
  CreateFdwStmt: { kind: 'CREATE FOREIGN DATA WRAPPER', effect: 'admin' },
  AlterFdwStmt: { kind: 'ALTER FOREIGN DATA WRAPPER', effect: 'admin' },
  CreateForeignServerStmt: { kind: 'CREATE SERVER', effect: 'admin' },
  AlterForeignServerStmt: { kind: 'ALTER SERVER', effect: 'admin' },
  CreateUserMappingStmt: { kind: 'CREATE USER MAPPING', effect: 'admin' },
  AlterUserMappingStmt: { kind: 'ALTER USER MAPPING', effect: 'admin' },
  DropUserMappingStmt: { kind: 'DROP USER MAPPING', effect: 'admin' },
  CreateEventTrigStmt: { kind: 'CREATE EVENT TRIGGER', effect: 'admin' },
  AlterEventTrigStmt: { kind: 'ALTER EVENT TRIGGER', effect: 'admin' },
  CreatePLangStmt: { kind: 'CREATE LANGUAGE', effect: 'admin' },
  SecLabelStmt: { kind: 'SECURITY LABEL', effect: 'admin' },
  AlterCollationStmt: { kind: 'ALTER COLLATION', effect: 'ddl' },
  CreateStmt: { kind: 'CREATE TABLE', effect: 'ddl' },
  CreateForeignTableStmt: { kind: 'CREATE FOREIGN TABLE', effect: 'ddl' },
  ImportForeignSchemaStmt: { kind: 'IMPORT FOREIGN SCHEMA', effect: 'ddl' },
  IndexStmt: { kind: 'CREATE INDEX', effect: 'ddl' },
  ViewStmt: { kind: 'CREATE VIEW', effect: 'ddl' },
  CreateSchemaStmt: { kind: 'CREATE SCHEMA', effect: 'ddl' },
  CreateSeqStmt: { kind: 'CREATE SEQUENCE', effect: 'ddl' },
  AlterSeqStmt: { kind: 'ALTER SEQUENCE', effect: 'ddl' },
  CreateTrigStmt: { kind: 'CREATE TRIGGER', effect: 'ddl' },
  CreatePolicyStmt: { kind: 'CREATE POLICY', effect: 'ddl' },
  AlterPolicyStmt: { kind: 'ALTER POLICY', effect: 'ddl' },
  RuleStmt: { kind: 'CREATE RULE', effect: 'ddl' },
  CompositeTypeStmt: { kind: 'CREATE TYPE', effect: 'ddl' },
  CreateEnumStmt: { kind: 'CREATE TYPE', effect: 'ddl' },
  CreateRangeStmt: { kind: 'CREATE TYPE', effect: 'ddl' },
  AlterEnumStmt: { kind: 'ALTER TYPE', effect: 'ddl' },
  AlterTypeStmt: { kind: 'ALTER TYPE', effect: 'ddl' },
  CreateDomainStmt: { kind: 'CREATE DOMAIN', effect: 'ddl' },
  AlterDomainStmt: { kind: 'ALTER DOMAIN', effect: 'ddl' },
  CreateCastStmt: { kind: 'CREATE CAST', effect: 'ddl' },
  CreateConversionStmt: { kind: 'CREATE CONVERSION', effect: 'ddl' },
  CreateOpClassStmt: { kind: 'CREATE OPERATOR CLASS', effect: 'ddl' },
  CreateOpFamilyStmt: { kind: 'CREATE OPERATOR FAMILY', effect: 'ddl' },
  AlterOpFamilyStmt: { kind: 'ALTER OPERATOR FAMILY', effect: 'ddl' },
  AlterOperatorStmt: { kind: 'ALTER OPERATOR', effect: 'ddl' },
  CreateAmStmt: { kind: 'CREATE ACCESS METHOD', effect: 'admin' },
  CreateTransformStmt: { kind: 'CREATE TRANSFORM', effect: 'ddl' },
  CreateStatsStmt: { kind: 'CREATE STATISTICS', effect: 'ddl' },
  AlterStatsStmt: { kind: 'ALTER STATISTICS', effect: 'ddl' },
  AlterFunctionStmt: { kind: 'ALTER FUNCTION', effect: 'ddl' },
  AlterDefaultPrivilegesStmt: { kind: 'ALTER DEFAULT PRIVILEGES', effect: 'ddl' },
  AlterTSDictionaryStmt: { kind: 'ALTER TEXT SEARCH DICTIONARY', effect: 'ddl' },
  AlterTSConfigurationStmt: { kind: 'ALTER TEXT SEARCH CONFIGURATION', effect: 'ddl' },
  CommentStmt: { kind: 'COMMENT', effect: 'ddl' },
  AlterObjectDependsStmt: { kind: 'ALTER', effect: 'ddl' },
};

/** The kind and base effect for one statement node. Unknown node types give effect "unknown". */
export function kindOf(type: string, node: Record<string, unknown>): KindInfo {
  const known = fixed[type];
  if (known) return known;
  switch (type) {
    case 'DropStmt':
      return { kind: joinKind('DROP', objectTypeWords(node.removeType)), effect: 'ddl' };
    case 'CreateTableAsStmt':
      return {
        kind: node.objtype === 'OBJECT_MATVIEW' ? 'CREATE MATERIALIZED VIEW' : 'CREATE TABLE',
        effect: 'ddl',
      };
    case 'AlterTableStmt':
      return { kind: joinKind('ALTER', objectTypeWords(node.objtype) || 'TABLE'), effect: 'ddl' };
    case 'RenameStmt':
      return { kind: joinKind('ALTER', objectTypeWords(node.renameType)), effect: 'ddl' };
    case 'AlterObjectSchemaStmt':
    case 'AlterOwnerStmt':
      return { kind: joinKind('ALTER', objectTypeWords(node.objectType)), effect: 'ddl' };
    case 'CreateFunctionStmt':
      return { kind: node.is_procedure ? 'CREATE PROCEDURE' : 'CREATE FUNCTION', effect: 'ddl' };
    case 'DefineStmt':
      return { kind: joinKind('CREATE', objectTypeWords(node.kind)), effect: 'ddl' };
    case 'GrantStmt':
      return { kind: node.is_grant ? 'GRANT' : 'REVOKE', effect: 'ddl' };
    case 'GrantRoleStmt':
      return { kind: node.is_grant ? 'GRANT' : 'REVOKE', effect: 'admin' };
    case 'VacuumStmt':
      return node.is_vacuumcmd ? { kind: 'VACUUM', effect: 'admin' } : { kind: 'ANALYZE', effect: 'write' };
    case 'FetchStmt':
      return { kind: node.ismove ? 'MOVE' : 'FETCH', effect: 'read' };
    case 'DiscardStmt':
      return { kind: 'DISCARD', effect: 'session' };
    case 'VariableSetStmt':
      return {
        kind: node.kind === 'VAR_RESET' || node.kind === 'VAR_RESET_ALL' ? 'RESET' : 'SET',
        effect: 'session',
      };
    case 'TransactionStmt':
      return transactionKind(node.kind);
    default:
      break;
  }
  // Anything else that names its verb is still a schema change; other node types cannot be placed.
  const verb = /^(Create|Alter|Drop)/.exec(type)?.[1];
  if (verb) return { kind: verb.toUpperCase(), effect: 'ddl' };
  return { kind: type.replace(/Stmt$/, '').toUpperCase() || 'UNKNOWN', effect: 'unknown' };
}

function joinKind(verb: string, object: string): string {
  return object ? `${verb} ${object}` : verb;
}

function transactionKind(kind: unknown): KindInfo {
  switch (kind) {
    case 'TRANS_STMT_BEGIN':
      return { kind: 'BEGIN', effect: 'transaction' };
    case 'TRANS_STMT_START':
      return { kind: 'START TRANSACTION', effect: 'transaction' };
    case 'TRANS_STMT_COMMIT':
      return { kind: 'COMMIT', effect: 'transaction' };
    case 'TRANS_STMT_ROLLBACK':
      return { kind: 'ROLLBACK', effect: 'transaction' };
    case 'TRANS_STMT_SAVEPOINT':
      return { kind: 'SAVEPOINT', effect: 'transaction' };
    case 'TRANS_STMT_RELEASE':
      return { kind: 'RELEASE', effect: 'transaction' };
    case 'TRANS_STMT_ROLLBACK_TO':
      return { kind: 'ROLLBACK', effect: 'transaction' };
    // Two-phase commit keeps a transaction alive beyond the session: not a plain transaction step.
    case 'TRANS_STMT_PREPARE':
      return { kind: 'PREPARE TRANSACTION', effect: 'write' };
    case 'TRANS_STMT_COMMIT_PREPARED':
      return { kind: 'COMMIT PREPARED', effect: 'write' };
    case 'TRANS_STMT_ROLLBACK_PREPARED':
      return { kind: 'ROLLBACK PREPARED', effect: 'write' };
    default:
      return { kind: 'TRANSACTION', effect: 'unknown' };
  }
}
