/**
 * The fenced blocks of a Markdown page that a test runs, and the convention that says which.
 *
 * - ```sh            run, in page order, by one bash shell (the page's own shell: variables,
 *                    the working directory and background jobs carry over from block to block)
 * - ```sh exit=1     run, and it must end with that status instead of 0
 * - ```sh expect="…" run, and its output (stdout and stderr) must hold that text; repeatable
 * - ```sh-norun      shown, never run (it needs what a test cannot do, or a command to come)
 * - ```js file=NAME  any other block with file=NAME is written to NAME, relative to the
 *                    shell's directory at that point, before the next block runs
 * - ```text, ```yaml, ```json, ```ts, ```js, ```sql  shown, never run
 *
 * Any other fence, an unlabelled one included, is an error: a command cannot hide from the
 * test in a block nobody looks at.
 */

/** One fenced block of a page. */
export interface DocBlock {
  /** The fence's language: sh, sh-norun, text, yaml, … */
  lang: string;
  /** The 1-based line of the opening fence. */
  line: number;
  /** The text between the fences, ending with a newline. */
  body: string;
  /** Texts that the block's output must hold (sh only). */
  expect: string[];
  /** The status the block must end with (sh only). */
  exit: number;
  /** Where the block's text is written (not sh). */
  file?: string;
}

/** Languages of blocks that are shown and never run. */
const SHOWN = new Set(["sh-norun", "text", "yaml", "json", "ts", "js", "sql"]);

const FENCE = /^( {0,3})(`{3,}|~{3,})(.*)$/;

/** Splits an info string into its language and its key=value or key="value" attributes. */
function parseInfo(info: string, where: string): { lang: string; attrs: [string, string][] } {
  const trimmed = info.trim();
  const lang = /^\S*/.exec(trimmed)![0];
  let tail = trimmed.slice(lang.length);
  const attrs: [string, string][] = [];
  const attr = /^\s+([a-z]+)=(?:"((?:[^"\\]|\\.)*)"|(\S+))/;
  while (tail.trim() !== "") {
    const m = attr.exec(tail);
    if (!m) throw new Error(`${where}: cannot read the fence's attributes ${JSON.stringify(tail)}`);
    attrs.push([m[1]!, m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : m[3]!]);
    tail = tail.slice(m[0].length);
  }
  return { lang, attrs };
}

/** The blocks of MARKDOWN (named SOURCE in errors), checked against the convention above. */
export function parseDocBlocks(markdown: string, source: string): DocBlock[] {
  const lines = markdown.split("\n");
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!);
    if (!open) continue;
    const where = `${source}:${i + 1}`;
    const fence = open[2]!;
    const { lang, attrs } = parseInfo(open[3]!, where);
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const close = FENCE.exec(lines[j]!);
      if (
        close &&
        close[2]![0] === fence[0] &&
        close[2]!.length >= fence.length &&
        !close[3]!.trim()
      )
        break;
      body.push(lines[j]!.slice(Math.min(open[1]!.length, /^ */.exec(lines[j]!)![0].length)));
    }
    if (j === lines.length) throw new Error(`${where}: the fence is never closed`);
    if (lang !== "sh" && !SHOWN.has(lang)) {
      throw new Error(
        `${where}: a fence of language ${JSON.stringify(lang)}; use sh (run), sh-norun (shown) or one of ${[...SHOWN].join(", ")}`,
      );
    }
    const block: DocBlock = {
      lang,
      line: i + 1,
      body: `${body.join("\n")}\n`,
      expect: [],
      exit: 0,
    };
    for (const [key, value] of attrs) {
      if (lang === "sh" && key === "expect") block.expect.push(value);
      else if (lang === "sh" && key === "exit" && /^\d+$/.test(value)) block.exit = Number(value);
      else if (lang !== "sh" && lang !== "sh-norun" && key === "file") block.file = value;
      else throw new Error(`${where}: ${key}=${value} does not apply to a ${lang} block`);
    }
    blocks.push(block);
    i = j;
  }
  return blocks;
}
