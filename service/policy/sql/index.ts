// The SQL policy and masking the PostgreSQL gateway calls: classification (real parser), decisions,
// redaction, and result masking. Everything here is pure except the one-time parser load.
export { maskCell, maskCellAt } from '../mask/cell.js';
export {
  CopyFormatError,
  type CopyMaskSupport,
  CopyOutMasker,
  copyMaskSupport,
  decodeCopyCsvRow,
  decodeCopyTextRow,
  encodeCopyTextRow,
  type MaskedCopyData,
  type MaskedRow,
  maskCopyCsvRow,
  maskCopyTextRow,
} from '../mask/copy.js';
export {
  DETECTORS,
  findSensitive,
  ibanValid,
  luhnValid,
  maskText,
  maskWholeValue,
} from '../mask/detectors.js';
export { guardEchoedValues, maskNoticeText } from '../mask/notice.js';
export { detectorsOf, planMask, TYPE_OID } from '../mask/plan.js';
export { classifySql, type PreparedStatements } from './classify.js';
export { columnMaskRules, decideStatement, tableIsRule } from './decide.js';
export { isKnownBuiltin } from './functions.js';
export { initSqlParser, SqlParserNotReady, sqlParserReady } from './parser.js';
export { trackPrepared } from './prepared.js';
export { redactSql } from './redact.js';
export type * from './types.js';
