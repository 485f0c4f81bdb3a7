// Cleaning: normalisation and the quality rules a document must pass. Each rule is configurable and
// each rejection names the rule and the measured value, so the report can say why.

export interface QualityRules {
  minChars: number;
  maxChars: number;
  /** Fraction of non-blank lines that repeat an earlier line of the same document (Gopher: 0.3). */
  maxDuplicateLineFraction: number;
  /** Fraction of word 3-grams that occur more than once in the document. */
  maxRepeatedNgramFraction: number;
  /** Fraction of lines that look like web or legal boilerplate. */
  maxBoilerplateLineFraction: number;
  /** Fraction of non-space characters that are letters (catches markup, tables of numbers, junk). */
  minAlphaFraction: number;
}

export type QualityReason = 'empty' | 'tooShort' | 'tooLong' | 'repetitive' | 'boilerplate' | 'lowAlpha';

/** NFC, LF line ends, no control characters but tab and newline, no trailing spaces, ≤1 blank line. */
export function normalise(text: string): string {
  return (
    text
      .normalize('NFC')
      .replace(/\r\n?/g, '\n')
      // eslint-disable-next-line no-control-regex -- control characters are exactly what this removes
      .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F\u200B\uFEFF]/g, '')
      .replace(/[ \t]+$/gm, '')
      .replace(/\n{3,}/g, '\n\n')
      .trim()
  );
}

const BOILERPLATE = [
  /\b(all rights reserved|copyright ©|©\s*\d{4})\b/i,
  /\b(cookie|cookies)\b.*\b(use|policy|accept)\b/i,
  /\b(click here|read more|sign up|log ?in|subscribe( now)?|unsubscribe)\b/i,
  /\b(terms (of use|and conditions|of service)|privacy policy)\b/i,
  /\b(share (this|on)|follow us)\b/i,
  /\bjavascript\b.*\b(enable|disabled|required)\b/i,
];

/** The first rule `text` (already normalised) breaks, or undefined if it passes all. */
export function checkQuality(text: string, rules: QualityRules): { reason: QualityReason; why: string } | undefined {
  if (text.length === 0) return { reason: 'empty', why: 'no text after normalisation' };
  if (text.length < rules.minChars)
    return { reason: 'tooShort', why: `${text.length} chars < curate.minChars ${rules.minChars}` };
  if (text.length > rules.maxChars)
    return { reason: 'tooLong', why: `${text.length} chars > curate.maxChars ${rules.maxChars}` };

  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const seen = new Set<string>();
  let dupLines = 0;
  let boiler = 0;
  for (const l of lines) {
    if (seen.has(l)) dupLines += 1;
    seen.add(l);
    if (l.length < 200 && BOILERPLATE.some((re) => re.test(l))) boiler += 1;
  }
  const dupFrac = dupLines / lines.length;
  if (lines.length >= 3 && dupFrac > rules.maxDuplicateLineFraction) {
    return { reason: 'repetitive', why: `${pct(dupFrac)} of lines repeat (> ${pct(rules.maxDuplicateLineFraction)})` };
  }
  const ngramFrac = repeatedNgramFraction(text, 3);
  if (ngramFrac > rules.maxRepeatedNgramFraction) {
    return {
      reason: 'repetitive',
      why: `${pct(ngramFrac)} of word 3-grams repeat (> ${pct(rules.maxRepeatedNgramFraction)})`,
    };
  }
  const boilerFrac = boiler / lines.length;
  if (boilerFrac > rules.maxBoilerplateLineFraction) {
    return {
      reason: 'boilerplate',
      why: `${pct(boilerFrac)} of lines are boilerplate (> ${pct(rules.maxBoilerplateLineFraction)})`,
    };
  }
  const visible = text.length - (text.match(/\s/g)?.length ?? 0);
  const letters = text.match(/\p{L}/gu)?.length ?? 0;
  const alpha = letters / Math.max(1, visible);
  if (alpha < rules.minAlphaFraction)
    return { reason: 'lowAlpha', why: `${pct(alpha)} letters (< ${pct(rules.minAlphaFraction)})` };
  return undefined;
}

/** Fraction of word n-grams whose exact sequence occurred earlier in the same text. */
export function repeatedNgramFraction(text: string, n: number): number {
  const words = text.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length < n + 1) return 0;
  const seen = new Set<string>();
  let repeated = 0;
  const total = words.length - n + 1;
  for (let i = 0; i < total; i++) {
    const g = words.slice(i, i + n).join(' ');
    if (seen.has(g)) repeated += 1;
    else seen.add(g);
  }
  return repeated / total;
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}
