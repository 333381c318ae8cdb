"""Pure likelihood functions: discretized logistic mixtures and their PMF tables."""
from l3c_jax.likelihood.dmll import (Alphabet, MixtureParams, RGB_ALPHABET, latent_alphabet,
                                     split_params, coupled_means, log_prob, channel_mixture)
from l3c_jax.likelihood.pmf import mixture_pmf
