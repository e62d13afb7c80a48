// maskCell: apply one column's action to one cell value (as sent on the wire).
import type { Detector } from '../../config/schema.js';
import type { CellAction, MaskedCell } from '../sql/types.js';
import { maskText, maskWholeValue } from './detectors.js';

/** Quick byte check before decoding: an email needs an '@'; every other detector needs a letter or digit. */
function mayHoldFinding(value: Buffer, detectors: readonly Detector[]): boolean {
  const at = value.includes(0x40);
  if (detectors.every((d) => d === 'email')) return at;
  if (at) return true;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if ((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)) return true;
  }
  return false;
}

/** json/jsonb text (binary jsonb carries a version byte first): is it still valid JSON? */
function validJson(text: string): boolean {
  const body = text.charCodeAt(0) === 1 ? text.slice(1) : text;
  try {
    JSON.parse(body);
    return true;
  } catch {
    return false;
  }
}

/**
 * NULL stays NULL (masked false). `mask` replaces the whole text with a same-kind mask (the detector's mask
 * when the value is one recognisable value, else `********`); `null` sends NULL; `detect` replaces each
 * finding inside the text. A json/jsonb cell whose masked text is no longer valid JSON (a card number
 * masked inside a JSON number) becomes NULL rather than breaking the client's parser.
 */
export function maskCell(action: CellAction, value: Buffer | null, detectors: Detector[]): MaskedCell {
  if (value === null) return { value: null, masked: false };
  switch (action.kind) {
    case 'pass':
      return { value, masked: false };
    case 'null':
      return { value: null, masked: true };
    case 'mask':
      return { value: Buffer.from(maskWholeValue(value.toString('utf8')), 'utf8'), masked: true };
    case 'detect': {
      if (detectors.length === 0 || !mayHoldFinding(value, detectors)) return { value, masked: false };
      const { text, count } = maskText(value.toString('utf8'), detectors);
      if (count === 0) return { value, masked: false };
      if (action.json && !validJson(text)) return { value: null, masked: true };
      return { value: Buffer.from(text, 'utf8'), masked: true };
    }
  }
}
