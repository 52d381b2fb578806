/**
 * The files of the bundled data set, as paths relative to the raw data layout (and to data/,
 * where text files carry an extra .gz). Loaders find each with `findTable`, so a user's own copy
 * of the raw release (uncompressed, or O*NET's text format) loads the same way.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const NAICS_2017_DIR = 'naics/2017';
export const ONET_DIR = 'onet/29.2';
export const ESCO_DIR = 'esco/v1.1.1';
export const FIRMS_DIR = 'firms';
export const CROSSWALKS_DIR = 'crosswalks';

export const BUNDLED_FILES: readonly string[] = [
  `${NAICS_2017_DIR}/2-6 digit_2017_Codes.csv`,
  `${NAICS_2017_DIR}/2017_NAICS_Descriptions.csv`,
  `${NAICS_2017_DIR}/2017_NAICS_Index_File.csv`,
  `${NAICS_2017_DIR}/2017_NAICS_Cross_References.csv`,
  ...[
    'Occupation Data',
    'Task Statements',
    'Alternate Titles',
    'Sample of Reported Titles',
    'Skills',
    'Knowledge',
    'Work Styles',
    'Technology Skills',
    'Related Occupations',
    'Content Model Reference',
  ].map((name) => `${ONET_DIR}/${name}.xlsx`),
  ...[
    'occupations_en',
    'skills_en',
    'skillGroups_en',
    'ISCOGroups_en',
    'occupationSkillRelations',
    'skillSkillRelations',
    'broaderRelationsSkillPillar',
    'broaderRelationsOccPillar',
  ].map((name) => `${ESCO_DIR}/${name}.csv`),
  `${FIRMS_DIR}/wikipedia_companies_boberle.csv`,
  `${FIRMS_DIR}/sp500_constituents_gics.csv`,
  `${FIRMS_DIR}/sec_edgar_cik_ticker_sic.psv`,
  `${CROSSWALKS_DIR}/onet_esco_nesta/esco_onet_crosswalk_Nov2020.csv`,
  `${CROSSWALKS_DIR}/onet_soc/onet_soc_2010_to_2019_crosswalk_semicolon.csv`,
  `${CROSSWALKS_DIR}/onet_soc/nem-onet-to-soc-crosswalk.xlsx`,
  `${CROSSWALKS_DIR}/bls_oews_industry_occupation/natsector_M2024_dl.xlsx`,
  `${CROSSWALKS_DIR}/sic_naics/1987_SIC_to_2002_NAICS.csv`,
  `${CROSSWALKS_DIR}/naics_concordances/2007_to_2002_NAICS.xls`,
  `${CROSSWALKS_DIR}/naics_concordances/2012_to_2007_NAICS.xls`,
  `${CROSSWALKS_DIR}/naics_concordances/2017_to_2012_NAICS.xlsx`,
  `${CROSSWALKS_DIR}/isco_soc/ISCO_SOC_Crosswalk.xls`,
  `${CROSSWALKS_DIR}/soc_2010_2018/soc_2010_to_2018_crosswalk.xlsx`,
];

/**
 * Legacy Excel (.xls) files are bundled as CSV of their first sheet from the header row on (the
 * loaders read no .xls): the 1-based header row of each.
 */
export const XLS_HEADER_ROWS: Record<string, number> = {
  [`${CROSSWALKS_DIR}/naics_concordances/2007_to_2002_NAICS.xls`]: 3,
  [`${CROSSWALKS_DIR}/naics_concordances/2012_to_2007_NAICS.xls`]: 3,
  [`${CROSSWALKS_DIR}/isco_soc/ISCO_SOC_Crosswalk.xls`]: 7,
};

/** The data/ folder shipped with the package. */
export const BUNDLED_DATA_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'data');

/** Path of a raw-layout file inside a data folder, without its suffix (for findTable). */
export function tableBase(dataDir: string, file: string): string {
  return join(dataDir, file.replace(/\.(csv|psv|txt|xlsx|xls)$/, ''));
}
