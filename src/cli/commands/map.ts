/** `laborspace map`: a 2D map of the space (PCA or UMAP) as SVG, PNG or JSON. */
import { type Command, InvalidArgumentError, Option } from 'commander';

import { NAMED_AXES, splitPoles } from '../../analysis/analyses.js';
import { ENTITY_TYPES, type EntityType } from '../../store/index.js';
import { writeFileAtomic } from '../../util/output-file.js';
import { type Cli, print } from '../context.js';
import { positiveInt, typeList } from '../options.js';
import { progress } from '../progress.js';

export function registerMap(program: Command, cli: Cli): void {
  program
    .command('map')
    .description('a 2D map of the space (PCA over every entity, or UMAP on a sample), coloured by type, chosen entities labelled, an axis drawn')
    .option('--types <list>', `comma-separated types (default: ${ENTITY_TYPES.join(',')})`, typeList)
    .addOption(new Option('--method <method>', 'projection').choices(['pca', 'umap']).default('pca'))
    .option('--sample <n>', 'entities on a UMAP map', positiveInt, 3000)
    .option('--label <refs>', 'comma-separated references to label (default: a few well-known ones)')
    .option('--axis <name>', `draw a named axis (${Object.keys(NAMED_AXES).join(', ')}); PCA only`)
    .option('--from <poles>', 'draw the axis from these poles (with --to), as for `axis`')
    .option('--to <poles>', 'the other end of the drawn axis')
    .option('--out <file>', 'map.svg, map.png, or map.json (the coordinates)', 'map.svg')
    .action(async (opts: { types?: EntityType[]; method: 'pca' | 'umap'; sample: number; label?: string; axis?: string; from?: string; to?: string; out: string }) => {
      const { json } = cli.globals();
      if (!/\.(svg|png|json)$/i.test(opts.out)) throw new InvalidArgumentError(`--out ${opts.out}: the file must end in .svg, .png or .json`);
      if (opts.axis && !NAMED_AXES[opts.axis]) throw new InvalidArgumentError(`unknown axis "${opts.axis}" (named axes: ${Object.keys(NAMED_AXES).join(', ')})`);
      if (!opts.from !== !opts.to) throw new InvalidArgumentError('--from and --to go together');
      const axis = opts.axis ? NAMED_AXES[opts.axis] : opts.from ? { from: splitPoles(opts.from), to: splitPoles(opts.to!) } : undefined;
      // Loaded here: the drawing libraries are heavy and only this command needs them.
      const { mapSvg, spaceMap, svgToPng } = await import('../../analysis/map.js');
      const bar = progress('umap', json);
      try {
        await cli.withSpace(async (space) => {
          const map = await spaceMap(space, {
            types: opts.types,
            method: opts.method,
            sample: opts.sample,
            labels: opts.label ? splitPoles(opts.label) : undefined,
            axis,
            onProgress: (done, total) => bar.update(done, total, `epochs (${Math.floor((10 * done) / total) * 10}%)`),
          });
          bar.stop();
          if (/\.json$/i.test(opts.out)) writeFileAtomic(opts.out, JSON.stringify(map));
          else {
            const svg = await mapSvg(map);
            writeFileAtomic(opts.out, /\.png$/i.test(opts.out) ? svgToPng(svg) : svg);
          }
          const summary = { out: opts.out, method: map.method, points: map.points.length, labels: map.labels.map((l) => l.ref), explained: map.explained };
          print(json, summary, () => `${map.points.length} entities mapped by ${map.method.toUpperCase()}${map.explained ? ` (the two components carry ${(100 * (map.explained[0] + map.explained[1])).toFixed(1)}% of the variance)` : ''} to ${opts.out}.`);
        });
      } finally {
        bar.stop();
      }
    });
}
