"""Where evaluation data comes from: synthetic corpora, the Debian voices corpus, audio files.

* :mod:`.synthetic`: embeddings and trial lists with known properties, no audio;
* :mod:`.debian_voices`: a small real-speech corpus from Debian packages;
* :mod:`.audio`: reading and resampling audio files (soundfile, scipy).
"""
