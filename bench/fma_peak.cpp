// One core's floating-point ceiling: 12 independent chains of 8-wide float FMAs (AVX2), enough to keep both
// of Zen 3's FMA pipes busy through the 4-cycle latency. Prints the best of 5 runs in GFLOP/s (2 FLOPs per
// lane per FMA), timed with the thread's CPU clock so that time-slicing on a shared VM does not count.
// Built and run by bench/ceiling.py (c++ -O2 -mavx2 -mfma); no part of the library.
#include <immintrin.h>
#include <cstdio>
#include <cstdlib>
#include <ctime>
static double tt(){timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t); return t.tv_sec+1e-9*t.tv_nsec;}
int main(int argc,char**argv){
  long n = argc>1? atol(argv[1]) : 200000000L;
  __m256 a0=_mm256_set1_ps(1.0f),a1=a0,a2=a0,a3=a0,a4=a0,a5=a0,a6=a0,a7=a0,a8=a0,a9=a0,a10=a0,a11=a0;
  const __m256 m=_mm256_set1_ps(0.9999999f), c=_mm256_set1_ps(1e-7f);
  double best=0;
  for(int r=0;r<5;r++){
    double t0=tt();
    for(long i=0;i<n;i++){
      a0=_mm256_fmadd_ps(a0,m,c);a1=_mm256_fmadd_ps(a1,m,c);a2=_mm256_fmadd_ps(a2,m,c);a3=_mm256_fmadd_ps(a3,m,c);
      a4=_mm256_fmadd_ps(a4,m,c);a5=_mm256_fmadd_ps(a5,m,c);a6=_mm256_fmadd_ps(a6,m,c);a7=_mm256_fmadd_ps(a7,m,c);
      a8=_mm256_fmadd_ps(a8,m,c);a9=_mm256_fmadd_ps(a9,m,c);a10=_mm256_fmadd_ps(a10,m,c);a11=_mm256_fmadd_ps(a11,m,c);
      __asm__ volatile("" : "+x"(a0),"+x"(a1),"+x"(a2),"+x"(a3),"+x"(a4),"+x"(a5));
      __asm__ volatile("" : "+x"(a6),"+x"(a7),"+x"(a8),"+x"(a9),"+x"(a10),"+x"(a11));
    }
    double t=tt()-t0; double gf=n*12.0*16/t/1e9; if(gf>best)best=gf;
  }
  float s[8]; _mm256_storeu_ps(s,_mm256_add_ps(a0,a11));
  printf("%.1f\n",best); return s[0]==12345.f;
}
