/**
 * Matches free-text industry labels ("electric utility", "retailing") to NAICS codes by TF-IDF
 * cosine over the words of NAICS titles and index phrases, for firms that carry no industry code.
 */
export interface IndustryPhrase {
  code: string;
  text: string;
  via: 'title' | 'index';
}

export interface IndustryMatch {
  code: string;
  score: number;
  via: 'title' | 'index';
  phrase: string;
}

const STOPWORDS = new Set(['and', 'or', 'of', 'the', 'for', 'in', 'on', 'to', 'a', 'an', 'other', 'except', 'all', 'nec', 'with', 'by', 'company', 'companies', 'industry', 'services']);

/** Lower-case words with a light suffix stemmer, so "banking", "banks" and "bank" meet. */
export function industryTokens(text: string): string[] {
  const out = new Set<string>();
  for (const raw of text.toLowerCase().normalize('NFKD').replace(/[\u0300-\u036f]/g, '').split(/[^a-z0-9]+/)) {
    if (!raw || STOPWORDS.has(raw)) continue;
    let w = raw;
    for (const suffix of ['ing', 'ers', 'er', 'es', 's']) {
      if (w.length > suffix.length + 3 && w.endsWith(suffix)) {
        w = w.slice(0, -suffix.length);
        break;
      }
    }
    out.add(w);
  }
  return [...out];
}

export class IndustryMatcher {
  private readonly phrases: { phrase: IndustryPhrase; tokens: string[]; norm: number }[] = [];
  private readonly postings = new Map<string, number[]>();
  private readonly idf = new Map<string, number>();

  constructor(phrases: readonly IndustryPhrase[]) {
    const df = new Map<string, number>();
    const tokenized = phrases.map((p) => ({ phrase: p, tokens: industryTokens(p.text) })).filter((p) => p.tokens.length);
    for (const p of tokenized) for (const t of p.tokens) df.set(t, (df.get(t) ?? 0) + 1);
    for (const [t, n] of df) this.idf.set(t, Math.log(1 + tokenized.length / n));
    tokenized.forEach((p, i) => {
      const norm = Math.sqrt(p.tokens.reduce((s, t) => s + this.idf.get(t)! ** 2, 0));
      this.phrases.push({ ...p, norm });
      for (const t of p.tokens) this.postings.set(t, [...(this.postings.get(t) ?? []), i]);
    });
  }

  /**
   * The best code for `text`: its best phrase's cosine, plus a little for every other phrase of the
   * same code that also matches (so "real estate" goes to the code with many real-estate phrases,
   * not to "Real estate schools"). Below minScore for the best phrase: no match.
   */
  match(text: string, minScore = 0.5): IndustryMatch | undefined {
    const tokens = industryTokens(text).filter((t) => this.idf.has(t));
    if (!tokens.length) return undefined;
    const queryNorm = Math.sqrt(industryTokens(text).reduce((s, t) => s + (this.idf.get(t) ?? Math.log(1 + this.phrases.length)) ** 2, 0));
    const dots = new Map<number, number>();
    for (const t of tokens) for (const i of this.postings.get(t)!) dots.set(i, (dots.get(i) ?? 0) + this.idf.get(t)! ** 2);
    const byCode = new Map<string, { best: IndustryMatch; support: number }>();
    for (const [i, dot] of dots) {
      const { phrase, norm } = this.phrases[i];
      const score = dot / (norm * queryNorm);
      if (score < minScore) continue;
      const entry = byCode.get(phrase.code);
      const candidate = { code: phrase.code, score, via: phrase.via, phrase: phrase.text };
      if (!entry) byCode.set(phrase.code, { best: candidate, support: 0 });
      else {
        entry.support++;
        if (score > entry.best.score || (score === entry.best.score && phrase.via === 'title')) entry.best = candidate;
      }
    }
    let best: IndustryMatch | undefined;
    let bestRank = -Infinity;
    for (const { best: m, support } of byCode.values()) {
      const rank = m.score + 0.1 * Math.log1p(support) + (m.via === 'title' ? 1e-6 : 0);
      if (rank > bestRank || (rank === bestRank && best && m.code < best.code)) {
        best = m;
        bestRank = rank;
      }
    }
    return best;
  }
}
