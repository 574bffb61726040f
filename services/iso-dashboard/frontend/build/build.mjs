// Builds the dashboard's front-end into teamnl_dashboard/static/dist/:
//   dashboard.js     charts (chart.js) and live updates (EventSource), one IIFE bundle
//   world-110m.json  country outlines as SVG paths, projected here (d3-geo, equirectangular
//                    960x480, the projection teamnl_dashboard/web/geo.py uses for markers),
//                    so the map needs no tile server and no browser-side geo code
//   manifest.json    what was built, for the server's "bundle present" check
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { geoCentroid, geoEquirectangular, geoPath } from "d3-geo";
import * as esbuild from "esbuild";
import { feature } from "topojson-client";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const out = join(root, "..", "teamnl_dashboard", "static", "dist");
export const WIDTH = 960;
export const HEIGHT = 480;

async function bundle() {
  await esbuild.build({
    entryPoints: [join(root, "src", "dashboard.js")],
    outfile: join(out, "dashboard.js"),
    bundle: true,
    format: "iife",
    minify: true,
    sourcemap: true,
    target: ["es2020"],
    legalComments: "linked",
    logLevel: "warning",
  });
}

async function worldMap() {
  const atlas = JSON.parse(
    await readFile(join(root, "node_modules", "world-atlas", "countries-110m.json"), "utf8"),
  );
  const projection = geoEquirectangular()
    .scale(WIDTH / (2 * Math.PI))
    .translate([WIDTH / 2, HEIGHT / 2])
    .precision(0.1);
  const path = geoPath(projection).digits(1);
  const countries = feature(atlas, atlas.objects.countries).features.map((country) => ({
    id: country.id ?? null, // ISO 3166-1 numeric, as a string; null for disputed areas
    name: country.properties.name,
    d: path(country),
    centroid: projection(geoCentroid(country)).map((v) => Math.round(v * 10) / 10),
  }));
  const map = { width: WIDTH, height: HEIGHT, projection: "equirectangular", countries };
  await writeFile(join(out, "world-110m.json"), JSON.stringify(map));
  return countries.length;
}

await mkdir(out, { recursive: true });
const started = Date.now();
const [, countries] = await Promise.all([bundle(), worldMap()]);
await writeFile(
  join(out, "manifest.json"),
  JSON.stringify({ bundle: "dashboard.js", map: "world-110m.json", countries }, null, 2),
);
console.log(`front-end built into ${out} (${countries} countries) in ${Date.now() - started} ms`);
